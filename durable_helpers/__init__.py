"""durable_helpers: explore Durable Functions task hubs from Python and Jupyter.

Example:
    >>> import durable_helpers
    >>> durable_helpers.__version__
    '0.1.0'
"""

__version__ = "0.1.0"

from .grpc_taskhub import GrpcTaskHub as GrpcTaskHub
from .snapshot import Snapshot as Snapshot
from .snapshot import load_snapshot as load_snapshot
from .taskhub import HubNotFoundError as HubNotFoundError
from .taskhub import InstanceNotFoundError as InstanceNotFoundError
from .taskhub import TaskHub as TaskHub
