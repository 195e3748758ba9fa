"""Write the README's "Prune your own model" example: an image folder of three classes of drawn
shapes and the weights of `net.build` trained on it, as a user would bring them.

    python examples/your_model/make_example.py [--images data/raw/shapes] [--per-class 120] [--epochs 10]

Writes `<images>/train/<class>/*.png` and `<images>/test/<class>/*.png` (circle, square, triangle:
24×24 RGB, random sizes, places and colours on noise) and `examples/your_model/weights.pt` (a
state_dict, `torch.save(model.state_dict(), path)`). Deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from net import build  # noqa: E402 - the builder next to this script

CLASSES = ("circle", "square", "triangle")
SIDE = 24


def draw(shape: str, rng: np.random.Generator) -> Image.Image:
    noise = rng.integers(0, 150, (SIDE, SIDE, 3), dtype=np.uint8)  # noisy enough that pruning shows
    image = Image.fromarray(noise, "RGB")
    pen = ImageDraw.Draw(image)
    size = int(rng.integers(6, 14))
    x, y = (int(v) for v in rng.integers(1, SIDE - size - 1, 2))
    colour = tuple(int(v) for v in rng.integers(100, 256, 3))
    if shape == "circle":
        pen.ellipse((x, y, x + size, y + size), fill=colour)
    elif shape == "square":
        pen.rectangle((x, y, x + size, y + size), fill=colour)
    else:
        pen.polygon([(x, y + size), (x + size, y + size), (x + size // 2, y)], fill=colour)
    return image


def write_folder(root: Path, per_class: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for split, count in (("train", per_class), ("test", max(10, per_class // 4))):
        for shape in CLASSES:
            folder = root / split / shape
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                draw(shape, rng).save(folder / f"{shape}_{i:04d}.png")


def read_split(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for label, shape in enumerate(CLASSES):
        for path in sorted((root / split / shape).glob("*.png")):
            images.append(np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1))
            labels.append(label)
    return torch.tensor(np.stack(images), dtype=torch.float32) / 255, torch.tensor(labels)


def train_weights(root: Path, epochs: int, seed: int) -> tuple[dict[str, torch.Tensor], float]:
    """What the user did before coming here: train the network on the train folder, normalised by
    the train split's statistics as the pipeline normalises it. Returns the state_dict and the test
    accuracy (%)."""
    torch.manual_seed(seed)
    x, y = read_split(root, "train")
    mean, std = x.mean((0, 2, 3), keepdim=True), x.std((0, 2, 3), keepdim=True)
    x = (x - mean) / std
    model = build(num_classes=len(CLASSES), in_channels=3)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.003)
    for _ in range(epochs):
        order = torch.randperm(len(y))
        for start in range(0, len(y), 32):
            batch = order[start : start + 32]
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    test_x, test_y = read_split(root, "test")
    with torch.no_grad():
        accuracy = float((model.eval()((test_x - mean) / std).argmax(1) == test_y).float().mean()) * 100
    return model.state_dict(), accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=Path("data/raw/shapes"))
    parser.add_argument("--weights", type=Path, default=HERE / "weights.pt")
    parser.add_argument("--per-class", type=int, default=120)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_folder(args.images, args.per_class, args.seed)
    weights, accuracy = train_weights(args.images, args.epochs, args.seed)
    torch.save(weights, args.weights)
    print(f"wrote {args.images} ({len(CLASSES)} classes) and {args.weights} (test accuracy {accuracy:.1f} %)")


if __name__ == "__main__":
    main()
