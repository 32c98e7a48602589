"""PostgreSQL's clock, as the server reads it at the moment of the call."""


def clock_seconds(conn):
    """The server's clock now (clock_timestamp(), not the transaction's start), as Unix
    seconds."""
    return float(conn.execute(
        "SELECT extract(epoch FROM clock_timestamp()) AS now").fetchone()["now"])
