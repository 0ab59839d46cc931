"""The hand-off from the decoder thread to the model: a bounded queue whose producer never waits.

The decoder puts every decoded frame; when `size` frames are already waiting, the oldest is dropped. The model
takes the newest frame and the older ones waiting are dropped too. Every drop is counted (`dropped`): frames are
never lost silently. Events (the stream connected, dropped, ended) are never dropped and keep their place: the
frames before an event are taken (the newest of them) before it, so the model sees a connection's frames before
the news that it dropped.
"""

from __future__ import annotations

import collections
import threading
from typing import Any


class NewestQueue:
    """Frames (anything) and events (instances of the types in `events`) from one producer to one consumer."""

    def __init__(self, size: int, events: tuple[type, ...]):
        if size < 1:
            raise ValueError(f"a frame queue holds at least 1 frame, not {size}")
        self.size, self._events = size, events
        self._items: collections.deque = collections.deque()
        self._frames = 0  # frames in _items
        self._cond = threading.Condition()
        self.put_frames = 0  # frames put since the start
        self.dropped = 0  # frames dropped since the start (never taken)

    def _is_event(self, item: Any) -> bool:
        return isinstance(item, self._events)

    def put(self, frame: Any) -> None:
        """Add a frame; never blocks. When `size` frames wait already, the oldest of them is dropped."""
        with self._cond:
            if self._frames >= self.size:
                for i, item in enumerate(self._items):
                    if not self._is_event(item):
                        del self._items[i]
                        self._frames -= 1
                        self.dropped += 1
                        break
            self._items.append(frame)
            self._frames += 1
            self.put_frames += 1
            self._cond.notify()

    def put_event(self, event: Any) -> None:
        """Add an event (kept in order, never dropped)."""
        with self._cond:
            self._items.append(event)
            self._cond.notify()

    def take(self, timeout: float | None = None) -> Any | None:
        """The next event, or the newest frame before the next event (dropping the older ones); None after
        `timeout` seconds with nothing to take."""
        with self._cond:
            if not self._items and not self._cond.wait_for(lambda: bool(self._items), timeout):
                return None
            if self._is_event(self._items[0]):
                return self._items.popleft()
            while len(self._items) > 1 and not self._is_event(self._items[1]):
                self._items.popleft()
                self._frames -= 1
                self.dropped += 1
            self._frames -= 1
            return self._items.popleft()

    def waiting(self) -> int:
        """Frames waiting now."""
        with self._cond:
            return self._frames
