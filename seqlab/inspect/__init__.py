"""Looking inside trained models: neuron activations over a text (char-rnn's visualisation)."""

from seqlab.inspect.neurons import NeuronTrace, hooked_units, neuron_page, next_token_logits, trace_neurons

__all__ = ["NeuronTrace", "hooked_units", "neuron_page", "next_token_logits", "trace_neurons"]
