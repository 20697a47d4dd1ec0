"""``python -m graphtrust.experiments NAME --out FILE [--only KEY=VALUES ...] [--merge FILES ...]``.

The command line of the experiment harness (:mod:`graphtrust.experiment`).
"""

from __future__ import annotations

from .experiment import main

if __name__ == "__main__":
    raise SystemExit(main())
