"""``ember.models``: standard architectures whose ``state_dict`` keys and shapes are
torchvision's (ResNet, VGG, MobileNetV2, ViT) or those of the published GPT-2
safetensors checkpoints, so their pre-trained weights load unchanged.

ember never downloads weights. Fetch a checkpoint once and pass its local path as
``weights=`` (a safetensors file, or a directory holding ``model.safetensors``).
torchvision publishes ``.pth`` files; convert one once with PyTorch::

    import torch, safetensors.torch
    safetensors.torch.save_file(torch.load("resnet18-f37072fd.pth"), "resnet18.safetensors")

GPT-2's published ``model.safetensors`` loads as it is (its Conv1D weights are
transposed on load). Loading checks every key and shape and names the first mismatch.

Example::

    >>> model = ember.models.resnet18(weights="resnet18.safetensors")
"""

from ._weights import check_state_dict, load_weights
from .gpt2 import GPT2, GPT2Config, from_conv1d_layout, gpt2, to_conv1d_layout
from .lenet import LeNet5, lenet5
from .mobilenetv2 import MobileNetV2, mobilenet_v2
from .resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50
from .vgg import VGG, vgg11, vgg11_bn, vgg16, vgg16_bn
from .vit import VisionTransformer, vit_b_16
