"""Rebuild the bundled sample (needs scikit-learn): python tools/make_sample.py.

The UCI handwritten digits (E. Alpaydin, C. Kaynak; CC BY 4.0) as shipped by scikit-learn,
rescaled from 0-16 to 0-255 and stored as uint8.
"""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

TARGET = (
    Path(__file__).resolve().parent.parent
    / "templates/project/{{ package_name }}/{% if data == 'sample' %}sample_data{% endif %}"
    / "digits.npz"
)


def main() -> None:
    digits = load_digits()
    images = np.round(digits.images * 255.0 / 16.0).astype(np.uint8)
    np.savez_compressed(
        TARGET,
        x=images,
        y=digits.target.astype(np.uint8),
        class_names=np.array([str(label) for label in range(10)]),
    )
    print(f"wrote {TARGET} ({TARGET.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
