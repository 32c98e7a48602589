"""Application logic. No flask.request in here: views and tasks pass plain values."""
