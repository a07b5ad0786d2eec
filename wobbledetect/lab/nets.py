"""Reference networks: the paper's Fashion-MNIST nets, a CIFAR ResNet18, a digits CNN.

All return logits; train them with ``torch.nn.CrossEntropyLoss`` (skorch then applies a
softmax in ``predict_proba``). W only needs the argmax, which logits and probabilities
share.
"""

from __future__ import annotations

from torch import nn

__all__ = ["DigitsCNN", "FashionCNN", "SmallFashionCNN", "resnet18_cifar", "NETS"]


class DigitsCNN(nn.Module):
    """A small CNN for 8x8 scikit-learn digits: conv 16 -> pool -> conv 32 -> dense 64 -> 10."""

    def __init__(self, n_classes: int = 10, in_channels: int = 1, image_size: int = 8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Flatten(),
        )
        side = image_size // 2
        self.classifier = nn.Sequential(
            nn.Linear(32 * side * side, 64), nn.ReLU(), nn.Linear(64, n_classes)
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class FashionCNN(nn.Module):
    """The paper's backdoor net (§3.2.1): conv 64 3x3 -> maxpool 2 -> conv 32 3x3 ->
    dense 500 -> dense 500 -> 10 (ReLU, no padding)."""

    def __init__(self, n_classes: int = 10, in_channels: int = 1, image_size: int = 28):
        super().__init__()
        side = (image_size - 2) // 2 - 2
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 32, 3), nn.ReLU(), nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(32 * side * side, 500), nn.ReLU(),
            nn.Linear(500, 500), nn.ReLU(),
            nn.Linear(500, n_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class SmallFashionCNN(nn.Module):
    """The paper's §3.1 net: conv 32 3x3 -> maxpool 2 -> conv 12 3x3 -> dense 50 -> 10."""

    def __init__(self, n_classes: int = 10, in_channels: int = 1, image_size: int = 28):
        super().__init__()
        side = (image_size - 2) // 2 - 2
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 12, 3), nn.ReLU(), nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(12 * side * side, 50), nn.ReLU(), nn.Linear(50, n_classes)
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def resnet18_cifar(n_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """torchvision's ResNet18 adapted to 32x32 inputs (3x3 stem, no max-pool)."""
    from torchvision.models import resnet18

    net = resnet18(num_classes=n_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


#: Name -> constructor, for configuration keys and the CLI.
NETS = {
    "digits-cnn": DigitsCNN,
    "fashion-cnn": FashionCNN,
    "small-fashion-cnn": SmallFashionCNN,
    "resnet18": resnet18_cifar,
}
