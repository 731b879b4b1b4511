"""The Kafka jars a local broker runs from: fetched once with Maven (``broker_config/pom.xml``) into a
cache folder, and the Java that runs them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from streams.devkit.kafka.layout import BrokerError

CONFIG = Path(__file__).resolve().parents[1] / "broker_config"
POM = CONFIG / "pom.xml"
LOG4J = CONFIG / "log4j2.yaml"
MIN_JAVA = 17


def _cache_dir() -> Path:
    """Where the fetched jars are kept (see the module's docstring)."""
    given = os.environ.get("SESSIONS_KAFKA_CACHE")
    if given:
        return Path(given)
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "pyproject.toml").is_file() and (checkout / "ops").is_dir():
        return checkout / "ops" / "kafka" / ".cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "session-engine" / "kafka"


CACHE = _cache_dir()


def kafka_version() -> str:
    if not POM.is_file():
        raise BrokerError(f"{POM} is missing: reinstall the package (it ships broker_config/ beside this module)")
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    if not match:
        raise BrokerError(f"no <kafka.version> in {POM}")
    return match.group(1)


def lib_dir() -> Path:
    return CACHE / kafka_version() / "lib"


def java_binary() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home, "bin", "java") if java_home else None
    java = str(candidate) if candidate and candidate.exists() else shutil.which("java")
    if not java:
        raise BrokerError(
            f"Java not found: Kafka needs Java {MIN_JAVA}+ on PATH or in JAVA_HOME "
            "(Debian: apt-get install openjdk-17-jre-headless)"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8.0" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise BrokerError(f"{java} is Java {major or '?'}; Kafka {kafka_version()} needs Java {MIN_JAVA}+")
    return java


def fetch_jars(quiet: bool = False) -> Path:
    """Copy the broker jars into the cache folder once; later calls reuse them."""
    target = lib_dir()
    marker = target / ".complete"
    if marker.exists():
        return target
    mvn = shutil.which("mvn")
    if not mvn:
        raise BrokerError(
            f"Kafka jars not fetched ({target} is missing) and Maven is not on PATH to fetch them "
            "(Debian: apt-get install maven)"
        )
    partial = target.with_name("lib.partial")
    shutil.rmtree(partial, ignore_errors=True)
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={partial}",
    ]
    if not quiet:
        print(f"fetching Apache Kafka {kafka_version()} jars with Maven into {target}", file=sys.stderr)
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 or not any(partial.glob("kafka_2.13-*.jar")):
        raise BrokerError("Maven could not fetch the Kafka jars:\n" + (result.stdout + result.stderr)[-3000:])
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    marker.touch()
    return target
