"""Ctrl-C stops a long call between batches: KeyboardInterrupt, raised once
the engine has stopped, with nothing left running."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import perplex
from conftest import TOKENIZER

LONG = ["a b c d e f g h i j k l m n o p"] * 200  # 20 ms a window: minutes of run


@pytest.fixture(autouse=True)
def default_sigint():
    # a process started as a shell's background job (as CI may run the tests)
    # inherits SIGINT ignored, and Python then keeps it ignored: give it the
    # handler a terminal's Ctrl-C meets
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_ctrl_c_in_process_raises_keyboard_interrupt():
    slow = perplex.load(f"mock:slow:{TOKENIZER}")
    before = set(threading.enumerate())
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    start = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        slow.evaluate(LONG, context=8, batch_size=1)
    assert time.perf_counter() - start < 5
    # nothing left running: no Python thread more than before (the timer has ended)
    timer.join()
    assert set(threading.enumerate()) <= before
    # and the model works afterwards
    assert slow.evaluate(LONG[:1], context=8).summary.scored_tokens > 0


SCRIPT = """
import signal, sys, perplex
signal.signal(signal.SIGINT, signal.default_int_handler)  # see default_sigint
slow = perplex.load(sys.argv[1])
print("started", flush=True)
slow.evaluate(["a b c d e f g h i j k l m n o p"] * 2000, context=8, batch_size=1)
print("finished", flush=True)
"""


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_ctrl_c_ends_a_script_with_keyboard_interrupt():
    p = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, f"mock:slow:{TOKENIZER}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert p.stdout.readline().strip() == "started"
    time.sleep(0.5)
    sent = time.perf_counter()
    p.send_signal(signal.SIGINT)
    try:
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()  # never left running, whatever happened
    assert time.perf_counter() - sent < 5
    assert "KeyboardInterrupt" in err and "finished" not in out
    assert p.returncode != 0
