"""Delivering a link: the snapshot job, git (the per-machine cache of checkouts and the
shared look at a remote), the files a scan finds, what an app is sent and how it is signed and
sent, the acknowledgements the app gave, and the job's lease.

Modules and their public functions:

acknowledgements: What an app has acknowledged of a repository: noted in Redis the moment the
    app answers, written to app_delivered_files (PostgreSQL) in batches.
    journal_key, write, forget, drop_journals, unwritten, Batch

attempt_log: Keeping the attempt log bounded: attempts older than ATTEMPT_LOG_RETENTION_DAYS are
    deleted by an hourly task, in batches so that no statement holds locks for long; the attempt
    inspector's request/response details are cleared sooner (days, and a per-link cap).
    prune, prune_details

exchange: The attempt inspector: the request an attempt sent last and the app's answer, kept
    as references per request, bounded and stripped of secrets once per attempt, formatted
    when read.
    Answer, Exchange, BodyExcerpt, stored, shown

file_scan: Scanning a checkout: every regular file except .git/ and symlinks, with its SHA-256;
    a file that cannot be sent (a name that is not UTF-8, a file that cannot be read) is set
    aside with the reason, on its own: the rest of the repository is delivered.
    ScannedFile, SkippedFile, scan, printable, read_content, encode

git_fetch: Fetching a repository with git into a cache folder, one job per repository at a time,
    and asking a remote where its HEAD is (one cheap `git ls-remote`, no lock, nothing written).
    GitError, RepositoryBusy, RepositoryFetching, cache_root, authenticated_url, repository_lock, checkout_name,
    checkout_path, checkout_names, remove_checkout_named, remove_checkout, checkout_commit,
    remote_head, fetch

leases: The links this process is delivering right now, and the renewal of their leases.
    hold, release, held, renew

patience: Waiting out an outage of our own services (PostgreSQL, Redis) instead of failing a
    job: what a job holds (a message taken off the queue, a file the app acknowledged but not
    yet recorded) is safest with it, and every worker waiting keeps the queue in Redis until
    PostgreSQL is back.
    patiently, in_transaction

payloads: What a client app is sent, byte for byte (../shared/DOCORA_CONTRACT.md §1): compact
    JSON bodies in the contract's key order (encode_body), ISO 8601 timestamps, the file bodies
    of a create or update (whole, or base64 chunks cut every 524,288 characters of the whole
    file's base64, no body over 1 MiB), the delete body, and X-Docora-Delivery-Id (delivery_id).
    iso_timestamp, encode_body, delivery_id, cached_entry, delete_body, file_bodies

requeue: Queueing a link's next job when its job ends without delivering it: given back untried
    (its repository busy or being fetched on this machine, the app's turn seconds away) or
    scheduled after a backoff or a Retry-After; after the commit, best effort.
    later, given_back, schedule, best_effort

shared_checkout: One fetch and one scan of a repository's commit for all the links that need it.
    Commit, remote_head, read

sized_lru: A thread-safe least-recently-used cache of sized values, held to a budget: the sum of
    len(value).
    SizedLRU

snapshot: The snapshot job: claim a link, fetch and scan its repository, deliver the difference
    to the app, record how the attempt ended.
    backoff_seconds, run_snapshot

snapshot_delivery: Delivering one claimed link: fetch and scan its repository (shared with every
    link of it, services/delivery/shared_checkout.py), diff against what the app acknowledged,
    and send deletes, then creates, then updates, each a signed POST (services/delivery.py),
    noting every acknowledgement at once (services/delivery/acknowledgements.py).
    SnapshotError, Sent, ClaimLost, deliver, Delivered

webhook_client: Signed webhook POSTs to a client app, in the Docora protocol.
    DeliveryError, sign, WebhookClient
"""
