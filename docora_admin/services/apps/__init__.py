"""An app's life: onboarding, deletion, and the demo apps.

Modules and their public functions:

app_deletion: Deleting an app (DELETE /admin/api/apps/<app_id>, the app page's confirm dialog).
    delete_app, remove_orphaned_checkouts

demo_data: A believable demo data set for an empty database: apps, repositories, links,
    failures.
    build, load_if_empty, broken_demo_apps, redeliver

onboarding: Onboarding an app (POST /admin/api/apps/onboard, the console's "Onboard an app"
    page), as the original Docora does it (DOCORA_CONTRACT.md §2): the fields and their bounds,
    a base_url that must be https and not an internal address (422 naming the rule;
    ALLOW_PRIVATE_WEBHOOKS lifts it for development), a new app id and bearer token.
    parse, onboard, suggested_client_key
"""
