"""Looking inside trained models: neuron activations over a text (char-rnn's visualisation)."""

from seqlab.inspect.neurons import NeuronTrace, neuron_page, trace_neurons

__all__ = ["NeuronTrace", "neuron_page", "trace_neurons"]
