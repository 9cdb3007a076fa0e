"""The one `main` every node shares: init rclpy, build the node, spin until Ctrl-C, clean up."""

from __future__ import annotations

import sys
from collections.abc import Callable

from controllers.config import ConfigError


def run_node(make_node: Callable[[], object], argv: list[str] | None = None) -> int:
    """Spin the node built by `make_node`; the exit status is its `exit_status` (0 if none).

    A bad parameter exits with status 2 and names it.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    rclpy.init(args=sys.argv if argv is None else argv)
    node = executor = None
    status = 0
    try:
        node = make_node()
        # one thread: every node's callbacks share one mutually exclusive group anyway, and rclpy's
        # MultiThreadedExecutor costs a whole core at high state-message rates, starving (through
        # the GIL) the actor's control thread into late ticks; the single-threaded one keeps it on
        # time
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except ConfigError as exc:
        print(f"robot_rl node: bad parameter: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # Ctrl-C invalidates the context while a callback may still be publishing: what that
        # callback raises then is part of the shutdown, not a failure of the node
        if rclpy.ok():
            raise
    finally:
        if executor is not None:
            executor.shutdown(
                timeout_sec=5.0
            )  # before destroy_node: a node destroyed under an executor can segfault
        if node is not None:
            status = int(getattr(node, "exit_status", 0))
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return status
