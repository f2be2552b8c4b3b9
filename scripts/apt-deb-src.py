#!/usr/bin/env python3
"""Prints deb822 `deb-src` stanzas mirroring the Debian `deb` sources configured on this machine (for
`apt-get source kubernetes` in scripts/kube-build.sh). scripts/deps.sh writes the output to
/etc/apt/sources.list.d/s3gw-deb-src.sources when no deb-src entry exists yet."""

import pathlib
import sys

stanzas = []
for f in sorted(pathlib.Path("/etc/apt/sources.list.d").glob("*.sources")):
    for stanza in f.read_text().strip().split("\n\n"):
        lines = [l for l in stanza.splitlines() if l.strip() and not l.lstrip().startswith("#")]
        uris = " ".join(l for l in lines if l.startswith("URIs:"))
        if any(l.strip() == "Types: deb" for l in lines) and "debian" in uris:
            stanzas.append("\n".join("Types: deb-src" if l.strip() == "Types: deb" else l for l in lines))
legacy = pathlib.Path("/etc/apt/sources.list")
if legacy.exists():
    for line in legacy.read_text().splitlines():
        parts = [p for p in line.split() if not p.startswith("[")]
        if len(parts) >= 4 and parts[0] == "deb" and "debian" in parts[1]:
            stanzas.append(f"Types: deb-src\nURIs: {parts[1]}\nSuites: {parts[2]}\nComponents: {' '.join(parts[3:])}")
if not stanzas:
    sys.exit("apt-deb-src: no Debian apt source found to mirror as deb-src")
print("\n\n".join(stanzas))
