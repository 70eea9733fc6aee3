"""How long local validation takes (the price of refusing bad input before any network call).

Run: ``.venv/bin/python benchmarks/bench_models.py``. Prints the cold import time of the models'
validation and registry (the package itself resolves names lazily; the typed operators read only
its keyword mapping while DAGs parse), validate_arguments / fal_validation_errors per call,
and the header-only check of a local 4000x3000 JPEG.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

I2V = "fal-ai/kling-video/v1.6/pro/image-to-video"
MASKS = "fal-ai/kling-video/v1/standard/image-to-video"
IMPORT = (
    "import time; t = time.perf_counter(); from airflow_provider_kling.models import validate_arguments; "
    "print(time.perf_counter() - t)"
)


def per_call(label: str, fn: Callable[[], Any], n: int) -> None:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    print(f"{label}: {(time.perf_counter() - start) / n * 1e6:.0f} µs/call")


def main() -> None:
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="kling-bench-"))
    runs = [
        subprocess.run([sys.executable, "-c", IMPORT], capture_output=True, text=True, check=True)
        for _ in range(5)
    ]
    cold_ms = min(float(r.stdout) for r in runs) * 1000
    print(f"import of the models' validation and registry (cold, min of 5): {cold_ms:.0f} ms")

    from PIL import Image

    from airflow_provider_kling.models import fal_validation_errors, validate_arguments

    args = {
        "prompt": "a cat " * 50,
        "image_url": "https://example.com/cat.png",
        "tail_image_url": "https://example.com/end.png",
        "duration": 10,
    }
    per_call("validate_arguments, URL inputs", lambda: validate_arguments(I2V, args), 2000)
    per_call("fal_validation_errors, URL inputs", lambda: fal_validation_errors(I2V, args), 2000)
    mask = {"mask_url": "https://example.com/m.png", "trajectories": [{"x": i, "y": i} for i in range(77)]}
    masks = {"prompt": "wave", "image_url": "https://example.com/sea.png", "dynamic_masks": [mask] * 6}
    per_call("validate_arguments, 6 masks x 77 points", lambda: validate_arguments(MASKS, masks), 500)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.jpg"
        buf = io.BytesIO()
        Image.new("RGB", (4000, 3000), (90, 120, 200)).save(buf, "JPEG", quality=95)
        path.write_bytes(buf.getvalue())
        local = {"prompt": "x", "image_url": path}
        label = f"validate_arguments, local 4000x3000 JPEG ({path.stat().st_size / 1e6:.1f} MB, header only)"
        per_call(label, lambda: validate_arguments(I2V, local), 200)


if __name__ == "__main__":
    main()
