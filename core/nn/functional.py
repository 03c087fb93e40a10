"""``ember.nn.functional``: the functional forms of every layer and loss (re-exports)."""

from ..ops.activation import (
    celu,
    elu,
    hardshrink,
    hardsigmoid,
    hardswish,
    hardtanh,
    leaky_relu,
    prelu,
    relu,
    relu6,
    rrelu,
    selu,
    softshrink,
    threshold,
)
from ..ops.activation_smooth import (
    gelu,
    glu,
    logsigmoid,
    mish,
    silu,
    softplus,
    softsign,
    tanhshrink,
)
from ..ops.attention import scaled_dot_product_attention
from ..ops.conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d
from ..ops.conv3d import conv3d, conv_transpose3d
from ..ops.dropout import (
    alpha_dropout,
    dropout,
    dropout1d,
    dropout2d,
    dropout3d,
    feature_alpha_dropout,
)
from ..ops.embedding import embedding
from ..ops.indexing import one_hot
from ..ops.interpolate import interpolate, upsample, upsample_bilinear, upsample_nearest
from ..ops.linalg import linear
from ..ops.losses import cross_entropy, kl_div, nll_loss
from ..ops.losses_binary import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    multilabel_soft_margin_loss,
    soft_margin_loss,
)
from ..ops.losses_pairwise import (
    cosine_embedding_loss,
    cosine_similarity,
    gaussian_nll_loss,
    hinge_embedding_loss,
    huber_loss,
    l1_loss,
    margin_ranking_loss,
    mse_loss,
    pairwise_distance,
    poisson_nll_loss,
    smooth_l1_loss,
    triplet_margin_loss,
)
from ..ops.norm import batch_norm, group_norm, layer_norm, normalize, rms_norm
from ..ops.pad import pad
from ..ops.pool import avg_pool1d, avg_pool2d, max_pool1d, max_pool2d
from ..ops.pool3d import (
    adaptive_avg_pool3d,
    adaptive_max_pool3d,
    avg_pool3d,
    max_pool3d,
    max_unpool1d,
    max_unpool2d,
    max_unpool3d,
)
from ..ops.pool_adaptive import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
)
from ..ops.softmax import log_softmax, softmax, softmin
from ..ops.unary_math import sigmoid, tanh
from .attention import multi_head_attention_forward
from .linear import bilinear
