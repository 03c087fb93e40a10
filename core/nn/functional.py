"""``ember.nn.functional``: the functional forms of every layer and loss (re-exports)."""

from ..ops.elementwise import elu, gelu, leaky_relu, relu, sigmoid, silu, softplus, tanh

# --- activations, dropout, embedding, linear, one_hot, losses ---
# --- softmax family and reductions ---
# --- conv, pooling, normalization, attention ---
