"""Helpers for tests that talk to real peers: closed sockets, polling until a peer got something."""
from __future__ import annotations

import socket
import time


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes (or resets) ``sock`` within ``within`` seconds."""
    sock.settimeout(max(within, 0.01))
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def wait_until(pred, timeout: float = 30.0) -> bool:
    """Poll ``pred`` until it holds or ``timeout`` seconds have passed; its last answer."""
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.02)
    return bool(pred())
