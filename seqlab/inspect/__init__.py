"""Looking inside trained models: tracing every family through forward hooks (`trace`, `tracing`),
neuron activations over a text (char-rnn's visualisation), attention alignments, induction heads,
and the self-contained HTML page and PNG figures of `seqlab inspect`."""

from seqlab.inspect.neurons import NeuronTrace, hooked_units, neuron_page, next_token_logits, trace_neurons
from seqlab.inspect.trace import PROBES, Recorder, Trace, layer_states, trace, tracing

__all__ = ["PROBES", "NeuronTrace", "Recorder", "Trace", "hooked_units", "layer_states", "neuron_page",
           "next_token_logits", "trace", "trace_neurons", "tracing"]
