"""Many deliveries in one PostgreSQL account, written in bulk by SQL: for the export's
memory test and the delivery log's benchmark (benchmarks/delivery_log_at_scale.py).

Each notification of one task has one shared message to twenty recipients. Deliveries are
queued two seconds apart per notification, newest now, with a realistic mix of states,
channels, addresses and read confidences. Triggers and foreign-key checks are off while
seeding (`session_replication_role = replica`: the test databases' user is a superuser):
nothing here changes a state, so the webhook trigger would find nothing to do, only
slower.
"""

from __future__ import annotations

import uuid

import asyncpg

PER_NOTIFICATION = 20
STEP = 100_000  # deliveries per transaction

_SEED = """
WITH n AS (
    INSERT INTO notifications (id, account_id, task_id, comment_id, kind, created_at)
    SELECT gen_random_uuid(), $1, $2, NULL, 'TASK_CREATED',
           now() - (($3::bigint + g) * interval '2 seconds')
    FROM generate_series(0, $4::int - 1) AS g
    RETURNING id, created_at
), m AS (
    INSERT INTO messages (id, account_id, notification_id, channel, header_message_id,
                          pixel_id, created_at)
    SELECT gen_random_uuid(), $1, n.id, 'EMAIL', '<' || gen_random_uuid() || '@seed.test>',
           NULL, n.created_at
    FROM n
    RETURNING id, notification_id, created_at
)
INSERT INTO deliveries (id, account_id, notification_id, message_id, recipient_id, position,
                        channel, address, state, attempts, queued_at, sent_at, failed_at,
                        read_at, read_confidence, error_code, error_message, open_count)
SELECT gen_random_uuid(), $1, m.notification_id, m.id, $5, r,
       (ARRAY['EMAIL', 'EMAIL', 'EMAIL', 'SMS', 'TELEGRAM'])[1 + (k / 7 % 5)],
       'user' || (k / 3 % 997) || '@seed.test',
       s.state, 1, m.created_at,
       CASE WHEN s.state <> 'QUEUED' THEN m.created_at + interval '1 second' END,
       CASE WHEN s.state = 'FAILED' THEN m.created_at + interval '1 second' END,
       CASE WHEN s.state = 'READ' THEN m.created_at + interval '1 hour' END,
       CASE WHEN s.state = 'READ' THEN (ARRAY['HUMAN', 'PROXY', 'MACHINE'])[1 + (k / 11 % 3)] END,
       CASE WHEN s.state = 'FAILED' THEN 'SMTP_550' END,
       CASE WHEN s.state = 'FAILED' THEN '=550 mailbox unavailable' END,
       CASE WHEN s.state = 'READ' THEN 1 ELSE 0 END
FROM m
CROSS JOIN generate_series(0, $6::int - 1) AS r
CROSS JOIN LATERAL (SELECT (hashtext(m.id::text) & 1048575) * 16 + r AS k) AS key
CROSS JOIN LATERAL (
    SELECT CASE WHEN k % 20 = 0 THEN 'FAILED' WHEN k % 20 = 1 THEN 'QUEUED'
                WHEN k % 10 = 2 THEN 'READ' ELSE 'SENT' END AS state
) AS s
"""


async def seed_deliveries(
    url: str, account_id: uuid.UUID, recipient_id: uuid.UUID, count: int
) -> uuid.UUID:
    """`count` deliveries (a multiple of 20) of one new task; returns the task's id."""
    task_id = uuid.uuid4()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO tasks (id, account_id, title, created_by, created_at)"
            " VALUES ($1, $2, 'Seeded', $3, now())",
            task_id,
            account_id,
            recipient_id,
        )
        notifications = count // PER_NOTIFICATION
        step = STEP // PER_NOTIFICATION
        for start in range(0, notifications, step):
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")
                await conn.execute(
                    _SEED,
                    account_id,
                    task_id,
                    start,
                    min(step, notifications - start),
                    recipient_id,
                    PER_NOTIFICATION,
                )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return task_id
