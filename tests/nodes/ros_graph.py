"""What nodes publish, subscribe, serve and call, from the ROS graph; and who reads ground truth.

Import it from tests under tests/nodes as `from ros_graph import ...` (pytest puts this folder on
sys.path). The graph is what DDS discovery has seen so far: call these once the nodes have been
up long enough to exchange messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rclpy.node import Node

ROS_OWN_TOPICS = frozenset({"/parameter_events", "/rosout"})
# Services every rclpy node offers under its own name (parameters, type descriptions).
ROS_OWN_SERVICES = frozenset(
    {
        "describe_parameters",
        "get_parameter_types",
        "get_parameters",
        "get_type_description",
        "list_parameters",
        "set_parameters",
        "set_parameters_atomically",
    }
)


@dataclass(frozen=True)
class NodeInterfaces:
    """Name -> message or service types of what one node offers and uses, ROS's own left out."""

    publishers: dict[str, list[str]]
    subscribers: dict[str, list[str]]
    services: dict[str, list[str]]
    clients: dict[str, list[str]]


def split_node_name(full_name: str) -> tuple[str, str]:
    """'/left/actor' -> ('actor', '/left'); 'actor' -> ('actor', '/')."""
    namespace, _, name = full_name.rpartition("/")
    return name, namespace or "/"


def node_interfaces(graph: Node, full_name: str) -> NodeInterfaces:
    """The publishers, subscriptions, services and clients of node `full_name` ('/ns/name' or
    'name') as `graph` has discovered them, without /rosout, /parameter_events and the node's
    parameter services. LookupError when the node is not in the graph."""
    name, namespace = split_node_name(full_name)
    known = graph.get_node_names_and_namespaces()
    if (name, namespace) not in known:
        seen = sorted(f"{ns.rstrip('/')}/{n}" for n, ns in known)
        raise LookupError(
            f"node {full_name!r} is not in the ROS graph (seen: {seen}); "
            "wait for discovery or check its name and namespace"
        )
    own_prefix = f"{namespace.rstrip('/')}/{name}/"

    def topics(pairs) -> dict[str, list[str]]:
        return {t: list(types) for t, types in pairs if t not in ROS_OWN_TOPICS}

    def services(pairs) -> dict[str, list[str]]:
        return {
            s: list(types)
            for s, types in pairs
            if not (s.startswith(own_prefix) and s[len(own_prefix) :] in ROS_OWN_SERVICES)
        }

    return NodeInterfaces(
        publishers=topics(graph.get_publisher_names_and_types_by_node(name, namespace)),
        subscribers=topics(graph.get_subscriber_names_and_types_by_node(name, namespace)),
        services=services(graph.get_service_names_and_types_by_node(name, namespace)),
        clients=services(graph.get_client_names_and_types_by_node(name, namespace)),
    )


def is_ground_truth(name: str) -> bool:
    """Whether a topic or service name is the twin's ground truth: anything under a `twin/`
    prefix, or an `object_pose` topic (in any namespace)."""
    *prefix, leaf = name.strip("/").split("/")
    return "twin" in prefix or leaf == "object_pose"


def ground_truth_readers(graph: Node, node_names: Iterable[str]) -> dict[str, list[str]]:
    """Which of `node_names` subscribe to a ground-truth topic or call a ground-truth service, and
    which names they read: {} when none does. Publishing or serving them is not reading.
    LookupError when a node is not in the graph (so a node that never started cannot pass)."""
    readers = {}
    for full_name in node_names:
        found = node_interfaces(graph, full_name)
        read = sorted(n for n in [*found.subscribers, *found.clients] if is_ground_truth(n))
        if read:
            readers[full_name] = read
    return readers
