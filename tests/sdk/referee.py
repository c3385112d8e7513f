"""filestack-python 4.0.0 as referee of `filegate emulator`.

Starts the emulator binary on 127.0.0.1:0 with a temporary data dir, routes the
official SDK to it, runs every check, prints one PASS/FAIL line per check and a
closing `N passed, M failed` line, and exits non-zero on any failure.

    .venv/bin/python tests/sdk/referee.py --filegate target/debug/filegate
"""

import argparse
import sys
import tempfile
import traceback
from pathlib import Path

import checks_faults
import checks_files
import checks_refusals
from harness import Emulator, EmulatorError, Journal, route_sdk_to
from sdkcalls import CheckFailed, Context
from webhooks import WebhookReceiver

API_KEY = "RefereeApiKey0000000000"
APP_SECRET = "referee-app-secret"
WEBHOOK_SECRET = "referee-webhook-secret"
START_TIMEOUT_S = 30
EXCHANGES_SHOWN = 4


class Tally:
    """Counts and prints check outcomes."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, name, detail):
        self.passed += 1
        print(f"PASS {name}" + (f" ({detail})" if detail else ""), flush=True)

    def fail(self, name, reason, exchanges=()):
        self.failed += 1
        print(f"FAIL {name}: {reason}", flush=True)
        if exchanges:
            print("  last requests the SDK sent, and the answers:")
            for exchange in exchanges:
                print(exchange.describe())
        sys.stdout.flush()

    def close(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 0 if self.failed == 0 else 1


def _sentence(check):
    return check.__name__.replace("_", " ")


def _reason(err):
    if isinstance(err, CheckFailed):
        return str(err)
    frame = traceback.extract_tb(err.__traceback__)[-1]
    text = str(err).strip().replace("\n", " ")[:300]
    return f"{type(err).__name__} at {Path(frame.filename).name}:{frame.lineno}: {text}"


def run_checks(ctx, tally):
    for check in checks_files.CHECKS + checks_refusals.CHECKS + checks_faults.CHECKS:
        mark = ctx.journal.mark()
        try:
            detail = check(ctx)
        except Exception as err:
            tally.fail(_sentence(check), _reason(err), ctx.journal.since(mark)[-EXCHANGES_SHOWN:])
        else:
            tally.ok(_sentence(check), detail)


def referee(binary, workdir, tally):
    receiver = WebhookReceiver()
    data_dir = workdir / "emulator-data"
    data_dir.mkdir()
    try:
        emulator = Emulator(
            binary, data_dir, workdir / "emulator.stderr", API_KEY, APP_SECRET,
            webhook=(receiver.url, WEBHOOK_SECRET),
        )
    except OSError as err:
        receiver.close()
        tally.fail("the emulator starts and prints its address", f"cannot run {binary}: {err}")
        return
    try:
        address = emulator.wait_for_address(START_TIMEOUT_S)
        tally.ok("the emulator starts and prints its address", address)
        journal = Journal()
        route_sdk_to(address, journal)
        ctx = Context(address, API_KEY, APP_SECRET, WEBHOOK_SECRET, workdir, receiver, journal)
        run_checks(ctx, tally)
    except EmulatorError as err:
        tally.fail("the emulator starts and prints its address", str(err))
    finally:
        try:
            code = emulator.stop()
            tally.ok("the emulator stops on SIGTERM", f"exit status {code}")
        except EmulatorError as err:
            tally.fail("the emulator stops on SIGTERM", str(err))
        receiver.close()
        if tally.failed:
            print("emulator log (stderr tail):\n" + emulator.stderr_tail(), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filegate", default="target/debug/filegate", help="path to the filegate binary")
    args = parser.parse_args()
    binary = Path(args.filegate).resolve()
    if not binary.is_file():
        print(f"no filegate binary at {binary}: build it with `cargo build`", file=sys.stderr)
        return 2
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="filegate-referee-") as tmp:
        referee(str(binary), Path(tmp), tally)
    return tally.close()


if __name__ == "__main__":
    sys.exit(main())
