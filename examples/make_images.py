"""Regenerate the bundled example images (synthetic scenes, free of any licence): python examples/make_images.py

The demo labels them with ontologies/example.yaml. Two sub-folders hold a file of the same name
(both must survive every export) and one JPEG carries an EXIF rotation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).parent / "images"


def scene(seed: int, width: int = 640, height: int = 480) -> Image.Image:
    rng = np.random.default_rng(seed)
    sky = np.linspace(200, 120, height)[:, None, None] * np.array([0.8, 0.9, 1.0])[None, None, :]
    base = np.broadcast_to(sky, (height, width, 3)) + rng.normal(0, 6, (height, width, 3))
    img = Image.fromarray(base.clip(0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    d.rectangle([0, int(height * 0.7), width, height], fill=(110, 140, 90))  # grass
    for _ in range(int(rng.integers(2, 5))):
        kind = rng.choice(["ball", "box", "triangle"])
        cx, cy = int(rng.integers(80, width - 80)), int(rng.integers(120, height - 60))
        r = int(rng.integers(30, 70))
        if kind == "ball":
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(210, 40, 40), outline=(120, 20, 20), width=3)
            d.ellipse([cx - r // 2, cy - r // 2, cx - r // 5, cy - r // 5], fill=(240, 140, 140))  # highlight
        elif kind == "box":
            d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=(40, 70, 200), outline=(20, 30, 110), width=4)
        else:
            d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=(40, 170, 60), outline=(20, 90, 30))
    return img.filter(ImageFilter.GaussianBlur(0.6))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    names = ["garden/scene.jpg", "park/scene.jpg", "park/picnic.webp", "yard.jpg", "rotated.jpg", "toys.jpg"]
    for seed, name in enumerate(names):
        p = OUT / name
        p.parent.mkdir(parents=True, exist_ok=True)
        img = scene(seed)
        if name == "rotated.jpg":  # stored sideways, displayed upright thanks to EXIF orientation 6
            exif = Image.Exif()
            exif[0x0112] = 6
            img.transpose(Image.Transpose.ROTATE_90).save(p, quality=85, exif=exif.tobytes())
        elif p.suffix == ".webp":
            img.save(p, quality=80)
        else:
            img.save(p, quality=85)
        print(p)


if __name__ == "__main__":
    main()
