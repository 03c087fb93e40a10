"""``ember.nn.functional``: the functional forms of every layer and loss (re-exports)."""

from ..ops.activation import gelu, softplus
from ..ops.attention import scaled_dot_product_attention
from ..ops.conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d
from ..ops.conv3d import conv3d, conv_transpose3d
from ..ops.dropout_embedding_ce import (
    cross_entropy,
    dropout,
    dropout1d,
    dropout2d,
    dropout3d,
    embedding,
    nll_loss,
)
from ..ops.indexing import one_hot
from ..ops.interpolate import interpolate, upsample, upsample_bilinear, upsample_nearest
from ..ops.linalg import linear
from ..ops.nn_activation import (  # relu, leaky_relu, elu, silu: with torch's inplace=
    celu,
    elu,
    hardsigmoid,
    hardswish,
    hardtanh,
    leaky_relu,
    logsigmoid,
    mish,
    prelu,
    relu,
    relu6,
    selu,
    silu,
    softsign,
)
from ..ops.nn_composite import (
    alpha_dropout,
    cosine_similarity,
    feature_alpha_dropout,
    gaussian_nll_loss,
    glu,
    hardshrink,
    hinge_embedding_loss,
    margin_ranking_loss,
    multilabel_soft_margin_loss,
    pairwise_distance,
    poisson_nll_loss,
    rrelu,
    soft_margin_loss,
    softmin,
    softshrink,
    tanhshrink,
    threshold,
    triplet_margin_loss,
)
from ..ops.nn_losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cosine_embedding_loss,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    smooth_l1_loss,
)
from ..ops.norm import batch_norm, group_norm, layer_norm, normalize, rms_norm
from ..ops.pad import pad
from ..ops.pool import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    avg_pool1d,
    avg_pool2d,
    max_pool1d,
    max_pool2d,
)
from ..ops.pool3d import (
    adaptive_avg_pool3d,
    adaptive_max_pool3d,
    avg_pool3d,
    max_pool3d,
    max_unpool1d,
    max_unpool2d,
    max_unpool3d,
)
from ..ops.scan import log_softmax, softmax
from ..ops.unary_math import sigmoid, tanh
from .attention import multi_head_attention_forward
from .linear import bilinear
