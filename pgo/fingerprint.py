#!/usr/bin/env python3
"""Prints what a profile in pgo/ fits: rustc's `-vV`, and hashes of Cargo.lock
and of Cargo.toml's [profile.release]. Every symbol name a profile's counts
are filed under carries a hash of these (cargo's -C metadata), so a build
with another rustc, other locked versions or another release profile finds
none of them.

  pgo/fingerprint.py            print it (pgo/train.sh saves it as pgo/trained-with)
  pgo/fingerprint.py --check    compare with pgo/trained-with: exit 1 if
                                Cargo.lock or the release profile changed
                                since training; only warn for another rustc
"""
import hashlib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def release_profile(toml: str) -> str:
    m = re.search(r"^\[profile\.release\]\n(.*?)(?=^\[|\Z)", toml, re.S | re.M)
    return m.group(1).strip() if m else ""


def fingerprint() -> str:
    lock = hashlib.sha256((ROOT / "Cargo.lock").read_bytes()).hexdigest()
    prof = release_profile((ROOT / "Cargo.toml").read_text())
    prof = hashlib.sha256(prof.encode()).hexdigest()
    rustc = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    return f"Cargo.lock {lock}\nprofile.release {prof}\nrustc -vV:\n{rustc.strip()}\n"


def main() -> int:
    now = fingerprint()
    if sys.argv[1:] != ["--check"]:
        sys.stdout.write(now)
        return 0
    saved_path = ROOT / "pgo" / "trained-with"
    saved = saved_path.read_text() if saved_path.exists() else ""
    head = lambda s: s.split("rustc -vV:")[0]
    if head(saved) != head(now):
        print(
            "pgo/llmux.profdata was trained before the last change to Cargo.lock or to\n"
            "Cargo.toml's [profile.release]: release builds would find none of its counts.\n"
            "Run pgo/train.sh and commit pgo/ with the change (pgo/README.md).",
            file=sys.stderr,
        )
        return 1
    if saved != now:
        print(
            "note: this rustc is not the one pgo/llmux.profdata was trained with "
            "(pgo/trained-with); release builds here are not profile-guided.",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
