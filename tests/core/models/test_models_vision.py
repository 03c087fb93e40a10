"""The vision models load PyTorch-layout weights and then agree with PyTorch.

The reference architectures are written here in plain torch under torchvision's module
names (torchvision itself is not a dependency); random weights go through a safetensors
file in PyTorch's layout, exactly as a converted torchvision checkpoint would.
"""

import math
import os
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as tnn
from safetensors.torch import save_file

import ember
import ember.models as models
from ember.models import check_state_dict, load_weights

# -- reference architectures in plain torch -----------------------------------------------


class TBasic(tnn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride=1, down=None):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.relu = tnn.ReLU()
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.downsample = down

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + idt)


class TBottle(tnn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride=1, down=None):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.conv2 = tnn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.conv3 = tnn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = tnn.BatchNorm2d(planes * 4)
        self.relu = tnn.ReLU()
        self.downsample = down

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + idt)


class TResNet(tnn.Module):
    def __init__(self, block, layers, num_classes=1000):
        super().__init__()
        self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = tnn.BatchNorm2d(64)
        self.relu = tnn.ReLU()
        self.maxpool = tnn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or cin != planes * block.expansion:
                down = tnn.Sequential(
                    tnn.Conv2d(cin, planes * block.expansion, 1, stride, bias=False),
                    tnn.BatchNorm2d(planes * block.expansion),
                )
            blocks = [block(cin, planes, stride, down)]
            cin = planes * block.expansion
            blocks += [block(cin, planes) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", tnn.Sequential(*blocks))
        self.avgpool = tnn.AdaptiveAvgPool2d(1)
        self.fc = tnn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


VGG_CFG = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class TVGG(tnn.Module):
    def __init__(self, cfg, bn, num_classes=1000, dropout=0.5):
        super().__init__()
        layers, cin = [], 3
        for v in VGG_CFG[cfg]:
            if v == "M":
                layers.append(tnn.MaxPool2d(2, 2))
                continue
            layers += [tnn.Conv2d(cin, v, 3, padding=1)] + [tnn.BatchNorm2d(v)] * bn + [tnn.ReLU()]
            cin = v
        self.features = tnn.Sequential(*layers)
        self.avgpool = tnn.AdaptiveAvgPool2d(7)
        self.classifier = tnn.Sequential(
            tnn.Linear(512 * 49, 4096), tnn.ReLU(), tnn.Dropout(dropout),
            tnn.Linear(4096, 4096), tnn.ReLU(), tnn.Dropout(dropout),
            tnn.Linear(4096, num_classes),
        )  # fmt: skip

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def t_cna(cin, cout, k=3, stride=1, groups=1):
    conv = tnn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False)
    return tnn.Sequential(conv, tnn.BatchNorm2d(cout), tnn.ReLU6())


class TInvRes(tnn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hid = cin * t
        self.res = stride == 1 and cin == cout
        pw = [t_cna(cin, hid, 1)] if t != 1 else []
        self.conv = tnn.Sequential(
            *pw, t_cna(hid, hid, 3, stride, hid), tnn.Conv2d(hid, cout, 1, bias=False),
            tnn.BatchNorm2d(cout),
        )  # fmt: skip

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


class TMobileNetV2(tnn.Module):
    SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
               (6, 160, 3, 2), (6, 320, 1, 1)]  # fmt: skip

    def __init__(self, num_classes=1000):
        super().__init__()
        feats, cin = [t_cna(3, 32, stride=2)], 32
        for t, c, n, s in self.SETTING:
            for i in range(n):
                feats.append(TInvRes(cin, c, s if i == 0 else 1, t))
                cin = c
        feats.append(t_cna(cin, 1280, 1))
        self.features = tnn.Sequential(*feats)
        self.classifier = tnn.Sequential(tnn.Dropout(0.0), tnn.Linear(1280, num_classes))

    def forward(self, x):
        return self.classifier(tnn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


class TEncoderBlock(tnn.Module):
    def __init__(self, heads, dim, mlp):
        super().__init__()
        self.ln_1 = tnn.LayerNorm(dim, eps=1e-6)
        self.self_attention = tnn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_2 = tnn.LayerNorm(dim, eps=1e-6)
        self.mlp = tnn.Sequential(
            tnn.Linear(dim, mlp), tnn.GELU(), tnn.Dropout(0.0), tnn.Linear(mlp, dim),
            tnn.Dropout(0.0),
        )  # fmt: skip

    def forward(self, inp):
        x = self.ln_1(inp)
        x = self.self_attention(x, x, x, need_weights=False)[0] + inp
        return x + self.mlp(self.ln_2(x))


class TViT(tnn.Module):
    def __init__(self, image_size, patch, layers, heads, dim, mlp, num_classes=1000):
        super().__init__()
        self.dim = dim
        self.conv_proj = tnn.Conv2d(3, dim, patch, patch)
        self.class_token = tnn.Parameter(torch.randn(1, 1, dim))
        self.encoder = tnn.Module()
        seq = (image_size // patch) ** 2 + 1
        self.encoder.pos_embedding = tnn.Parameter(torch.randn(1, seq, dim) * 0.02)
        self.encoder.layers = tnn.Sequential(
            OrderedDict(
                (f"encoder_layer_{i}", TEncoderBlock(heads, dim, mlp)) for i in range(layers)
            )
        )
        self.encoder.ln = tnn.LayerNorm(dim, eps=1e-6)
        self.heads = tnn.Sequential(OrderedDict(head=tnn.Linear(dim, num_classes)))

    def forward(self, x):
        x = self.conv_proj(x).reshape(x.shape[0], self.dim, -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        enc = self.encoder
        x = enc.ln(enc.layers(x + enc.pos_embedding))
        return self.heads(x[:, 0])


# -- helpers ------------------------------------------------------------------------------


def shapes(state_dict):
    return {k: tuple(v.shape) for k, v in state_dict.items()}


def randomize_bn_stats(model):
    """Non-trivial running statistics and affine parameters, so eval mode tests them."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, tnn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def cross_entropy(out):
    target = np.arange(out.shape[0]) % out.shape[1]
    lib = torch if isinstance(out, torch.Tensor) else ember
    return lib.nn.functional.cross_entropy(out, lib.tensor(target))


def check_parity(tmodel, build, tmp_path, x, atol=1e-4, loss=cross_entropy):
    """Save tmodel's weights as safetensors, load them into ember through ``build``,
    compare eval logits, then one training step's loss, gradients and BN statistics."""
    torch.manual_seed(0)
    randomize_bn_stats(tmodel)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in tmodel.state_dict().items()}, str(path))
    emodel = build(weights=str(path))
    assert shapes(emodel.state_dict()) == shapes(tmodel.state_dict())
    assert list(emodel.state_dict()) == list(tmodel.state_dict())

    tmodel.eval(), emodel.eval()
    tx, ex = torch.tensor(x), ember.tensor(x)
    with torch.no_grad():
        tout = tmodel(tx)
    eout = emodel(ex)
    scale = max(1.0, float(tout.abs().max()))
    np.testing.assert_allclose(eout.detach().numpy(), tout.numpy(), atol=atol * scale, rtol=1e-4)

    # The training step runs in float64: float32 rounding through BatchNorm over a tiny
    # batch would blur gradient differences that float64 shows plainly.
    tmodel.double().train(), emodel.double().train()
    tx, ex = torch.tensor(x, dtype=torch.float64), ember.tensor(x, dtype=ember.float64)
    tloss, eloss = loss(tmodel(tx)), loss(emodel(ex))
    tloss.backward()
    eloss.backward()
    np.testing.assert_allclose(eloss.item(), tloss.item(), rtol=1e-9)
    egrads = dict(emodel.named_parameters())
    for name, p in tmodel.named_parameters():
        gscale = max(1e-6, float(p.grad.abs().max()))
        np.testing.assert_allclose(
            egrads[name].grad.numpy(), p.grad.numpy(), atol=1e-7 * gscale, rtol=1e-6, err_msg=name
        )
    esd = emodel.state_dict()
    for name, buf in tmodel.named_buffers():
        np.testing.assert_allclose(esd[name].numpy(), buf.numpy(), atol=1e-9, rtol=1e-9)


def images(n, size):
    return np.random.default_rng(0).standard_normal((n, 3, size, size)).astype(np.float32)


# -- numerical parity ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "build, ref",
    [
        (models.resnet18, lambda: TResNet(TBasic, [2, 2, 2, 2], num_classes=10)),
        (models.resnet50, lambda: TResNet(TBottle, [3, 4, 6, 3], num_classes=10)),
    ],
    ids=["resnet18", "resnet50"],
)
def test_resnet_matches_torch(build, ref, tmp_path):
    check_parity(
        ref(), lambda weights: build(weights=weights, num_classes=10), tmp_path, images(2, 64)
    )


def test_vgg11_bn_features_match_torch(tmp_path):
    # The whole network carries a 25088x4096 classifier (120M parameters, seconds just to
    # initialize); its convolutional part is what is VGG-specific, so that runs here, and
    # the full network's layout is checked below (its full forward: the slow test).
    check_parity(
        TVGG("A", True).features,
        lambda weights: load_weights(models.vgg.make_layers(VGG_CFG["A"], True), weights),
        tmp_path,
        images(2, 64),
        loss=lambda out: (out * out).mean(),
    )


@pytest.mark.skipif(not os.environ.get("EMBER_SLOW_TESTS"), reason="set EMBER_SLOW_TESTS=1")
def test_vgg11_bn_matches_torch(tmp_path):
    check_parity(
        TVGG("A", True, num_classes=10, dropout=0.0),
        lambda weights: models.vgg11_bn(weights=weights, num_classes=10, dropout=0.0),
        tmp_path,
        images(2, 32),
    )


def test_mobilenet_v2_matches_torch(tmp_path):
    check_parity(
        TMobileNetV2(num_classes=10),
        lambda weights: models.mobilenet_v2(weights=weights, num_classes=10, dropout=0.0),
        tmp_path,
        images(2, 64),
    )


def test_small_vit_matches_torch(tmp_path):
    arch = dict(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32)
    check_parity(
        TViT(32, 8, 2, 2, 16, 32, num_classes=10),
        lambda weights: models.vit_b_16(weights=weights, num_classes=10, **arch),
        tmp_path,
        images(2, 32),
    )


def test_lenet5_roundtrips_its_own_weights(tmp_path):
    model = models.lenet5(num_classes=10)
    path = tmp_path / "lenet.safetensors"
    ember.serialization.save_file(model.state_dict(), path)
    again = models.lenet5(weights=path)
    x = ember.randn(3, 1, 32, 32)
    np.testing.assert_array_equal(again(x).detach().numpy(), model(x).detach().numpy())
    with pytest.raises(ValueError, match="32, 32"):
        model(ember.randn(1, 1, 28, 28))


# -- full-size layouts, without running them ----------------------------------------------


@pytest.mark.parametrize(
    "build, ref",
    [
        (models.resnet34, lambda: TResNet(TBasic, [3, 4, 6, 3])),
        (models.vgg16_bn, lambda: TVGG("D", True)),
        (models.vit_b_16, lambda: TViT(224, 16, 12, 12, 768, 3072)),
    ],
    ids=["resnet34", "vgg16_bn", "vit_b_16"],
)
def test_full_size_state_dict_layout_is_torchvisions(build, ref):
    with torch.device("meta"):
        expected = ref().state_dict()
    got = build().state_dict()
    assert list(got) == list(expected)
    assert shapes(got) == shapes(expected)


def test_published_parameter_counts():
    # torchvision's model cards: 11,689,512 and 25,557,032 parameters
    assert sum(p.numel() for p in models.resnet18().parameters()) == 11_689_512
    assert sum(p.numel() for p in models.resnet50().parameters()) == 25_557_032


# -- loading errors -----------------------------------------------------------------------


def test_weights_directory_and_errors(tmp_path):
    sd = {k: torch.tensor(v.numpy()) for k, v in models.lenet5(num_classes=4).state_dict().items()}
    save_file(sd, str(tmp_path / "model.safetensors"))
    model = models.lenet5(weights=tmp_path, num_classes=4)  # a directory
    np.testing.assert_array_equal(model.fc3.weight.detach().numpy(), sd["fc3.weight"].numpy())

    with pytest.raises(FileNotFoundError, match="never downloads"):
        models.lenet5(weights=tmp_path / "nope.safetensors")
    with pytest.raises(TypeError, match="path"):
        models.lenet5(weights=3)

    bad = dict(sd)
    del bad["fc1.bias"]
    save_file(bad, str(tmp_path / "missing.safetensors"))
    with pytest.raises(RuntimeError, match=r"lacks the key 'fc1\.bias'"):
        models.lenet5(weights=tmp_path / "missing.safetensors", num_classes=4)

    with pytest.raises(RuntimeError, match=r"'fc3\.weight' has shape \[4, 84\].*\[10, 84\]"):
        models.lenet5(weights=tmp_path / "model.safetensors", num_classes=10)

    extra = dict(sd, **{"fc4.weight": torch.zeros(1)})
    save_file(extra, str(tmp_path / "extra.safetensors"))
    with pytest.raises(RuntimeError, match=r"unexpected key 'fc4\.weight'"):
        models.lenet5(weights=tmp_path / "extra.safetensors", num_classes=4)


def test_check_state_dict_reports_first_mismatch_in_model_order():
    expected = {"a": ember.zeros(2), "b": ember.zeros(3), "c": ember.zeros(4)}
    with pytest.raises(RuntimeError, match="'b' has shape"):
        check_state_dict(expected, {"a": ember.zeros(2), "b": ember.zeros(4), "c": ember.zeros(5)})
    check_state_dict(expected, dict(expected))


def test_zero_init_residual_and_vit_input_check():
    model = models.resnet18(zero_init_residual=True)
    assert float(model.layer1[0].bn2.weight.abs().sum()) == 0.0
    vit = models.VisionTransformer(32, 8, 1, 2, 16, 32)
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\)"):
        vit(ember.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match="divisible"):
        models.VisionTransformer(30, 8, 1, 2, 16, 32)
    assert math.isclose(float(vit.class_token.abs().sum()), 0.0)
