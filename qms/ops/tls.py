"""A small CA for a site and certificates for its broker and devices (openssl CLI).

For networks that are not trusted (a sub-point linked over the internet, Wi-Fi shared with
the public). EC P-256 keys; the CA key never leaves the provisioning machine. Existing
keys and certificates are kept, so re-running provisioning does not invalidate devices.
"""
from __future__ import annotations

import ipaddress
import secrets
import subprocess
from pathlib import Path

CA_DAYS = 3650
LEAF_DAYS = 825


class TlsError(Exception):
    pass


def _openssl(*args: str) -> None:
    try:
        proc = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise TlsError("openssl not found: apt-get install openssl") from None
    if proc.returncode != 0:
        raise TlsError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def _newkey(key: Path) -> list[str]:
    return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key)]


def make_ca(tls_dir: Path, site: str) -> tuple[Path, Path]:
    tls_dir.mkdir(parents=True, exist_ok=True)
    crt, key = tls_dir / "ca.crt", tls_dir / "ca.key"
    if not crt.exists():
        _openssl("req", "-x509", "-new", *_newkey(key), "-days", str(CA_DAYS), "-out", str(crt),
                 "-subj", f"/O=QMS/CN=QMS CA {site}",
                 "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        key.chmod(0o600)
    return crt, key


def make_cert(tls_dir: Path, out: Path, name: str, hosts: list[str] = (), server: bool = False) -> Path:
    """Key + certificate signed by the site CA at out/<name>.{key,crt}; CN = name."""
    crt, key, csr = out / f"{name}.crt", out / f"{name}.key", out / f"{name}.csr"
    if crt.exists() and key.exists():
        return crt
    out.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-new", *_newkey(key), "-out", str(csr), "-subj", f"/O=QMS/CN={name}")
    key.chmod(0o600)
    ext = out / f"{name}.ext"
    lines = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature",
             f"extendedKeyUsage={'serverAuth' if server else 'clientAuth'}"]
    if hosts:
        lines.append("subjectAltName=" + ",".join(_san(h) for h in hosts))
    ext.write_text("\n".join(lines) + "\n")
    try:
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(tls_dir / "ca.crt"),
                 "-CAkey", str(tls_dir / "ca.key"), "-set_serial", "0x" + secrets.token_hex(16),
                 "-days", str(LEAF_DAYS), "-extfile", str(ext), "-out", str(crt))
    finally:
        csr.unlink(missing_ok=True)
        ext.unlink(missing_ok=True)
    return crt


def _san(host: str) -> str:
    try:
        ipaddress.ip_address(host)
        return f"IP:{host}"
    except ValueError:
        return f"DNS:{host}"
