"""Zip the Blender add-on (`blender_addon/ikmo_blender/`) for Blender's Preferences → Add-ons → Install….

Usage: python scripts/zip_blender_addon.py [--out dist/ikmo_blender.zip]

The zip holds the folder `ikmo_blender/` with its .py files (no caches), which is the layout
Blender's add-on installer expects. Deterministic: same sources, same bytes.
"""

from __future__ import annotations

import argparse
import logging
import zipfile
from pathlib import Path

log = logging.getLogger("zip_blender_addon")
REPO = Path(__file__).resolve().parents[1]
ADDON = REPO / "blender_addon" / "ikmo_blender"


def zip_addon(out: Path) -> Path:
    """Write the add-on zip to `out` (parent folders made); returns `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(ADDON.glob("*.py")):
            info = zipfile.ZipInfo(f"{ADDON.name}/{f.name}", date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, f.read_bytes())
    tmp.replace(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "dist" / "ikmo_blender.zip")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log.info("wrote %s", zip_addon(args.out))


if __name__ == "__main__":
    main()
