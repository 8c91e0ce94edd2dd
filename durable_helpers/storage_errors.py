"""Azure SDK errors of a storage account as StorageConfigurationErrors that say what to do.

A rejected key or credential, an endpoint that cannot be reached and one that does not answer
in time become one error type, with the account's secrets masked. Used by the readers.

Example:
    >>> error_code(ValueError("plain"))
    ''
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from durable_helpers.storage import StorageAccount, StorageConfigurationError, mask_secrets


def error_code(error: Exception) -> str:
    """The storage service's error code of an Azure SDK error ("" when it has none).

    Example:
        >>> error_code(ValueError("no code"))
        ''
    """
    code = getattr(error, "error_code", None)
    return str(getattr(code, "value", code) or "")


@contextlib.contextmanager
def storage_errors(account: StorageAccount) -> Iterator[None]:
    """Turn a rejected key/credential or an unreachable endpoint into StorageConfigurationError.

    Example:
        >>> with storage_errors(account):  # doctest: +SKIP
        ...     account.tables.list_tables()
    """
    try:
        yield
    except HttpResponseError as error:
        if not isinstance(error, ClientAuthenticationError) and error.status_code != 403:
            raise
        raise StorageConfigurationError(
            f"Storage account {account} rejected the request "
            f"({error_code(error) or error.status_code}: "
            f"{mask_secrets(str(error).splitlines()[0])}). Check the AccountKey or SAS in the "
            "connection string, or the credential's role (Storage Table Data Reader)."
        ) from None
    except ServiceRequestError as error:
        raise StorageConfigurationError(
            f"Cannot reach storage account {account}: {mask_secrets(str(error))}. "
            "Check the endpoints in the connection string; for the local task hub run "
            "'python -m durable_helpers.local up'."
        ) from None
    except ServiceResponseError as error:
        raise StorageConfigurationError(
            f"Storage account {account} did not answer in time: {mask_secrets(str(error))}. "
            "Check that the endpoints in the connection string are storage endpoints; on a slow "
            "network pass a longer read_timeout (seconds), e.g. TaskHub(..., read_timeout=300)."
        ) from None
