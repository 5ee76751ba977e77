"""What is published on the broadcast when a delivery changes.

The broadcast only says "look, this changed": subscribers read the current state from
the database, so a lost or duplicated message is harmless.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass


def account_channel(account_id: uuid.UUID) -> str:
    return f"beacon.deliveries.{account_id.hex}"


@dataclass(frozen=True)
class DeliveryChanged:
    account_id: uuid.UUID
    delivery_id: uuid.UUID
    task_id: uuid.UUID | None  # None for an invitation's email (about no task)
    comment_id: uuid.UUID | None

    @property
    def channel(self) -> str:
        return account_channel(self.account_id)

    def encode(self) -> str:
        return json.dumps(
            {
                "account_id": self.account_id.hex,
                "delivery_id": self.delivery_id.hex,
                "task_id": self.task_id.hex if self.task_id else None,
                "comment_id": self.comment_id.hex if self.comment_id else None,
            }
        )

    @classmethod
    def decode(cls, message: str) -> DeliveryChanged:
        data = json.loads(message)
        comment_id = data.get("comment_id")
        task_id = data.get("task_id")
        return cls(
            account_id=uuid.UUID(data["account_id"]),
            delivery_id=uuid.UUID(data["delivery_id"]),
            task_id=uuid.UUID(task_id) if task_id else None,
            comment_id=uuid.UUID(comment_id) if comment_id else None,
        )
