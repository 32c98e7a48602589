"""A thread-safe least-recently-used cache of sized values, held to a budget: the sum of
len(value). Used for commit scans (services/delivery/shared_checkout.py: a budget of files) and
encoded file entries (services/delivery/payloads.py: a budget of bytes)."""
import threading
from collections import OrderedDict


class SizedLRU:
    def __init__(self, budget):
        self.budget = budget
        self.lock = threading.Lock()
        self.values = OrderedDict()
        self.size = 0

    def get(self, key):
        with self.lock:
            value = self.values.get(key)
            if value is not None:
                self.values.move_to_end(key)
            return value

    def put(self, key, value):
        """Keep `value` (not replacing one already kept), dropping the least recently used past
        the budget; the newest is kept even alone over it."""
        with self.lock:
            if key in self.values:
                return
            self.values[key] = value
            self.size += len(value)
            while self.size > self.budget and len(self.values) > 1:
                self.size -= len(self.values.popitem(last=False)[1])

    def drop(self, key):
        with self.lock:
            value = self.values.pop(key, None)
            if value is not None:
                self.size -= len(value)
