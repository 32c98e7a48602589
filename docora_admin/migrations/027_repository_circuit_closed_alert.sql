-- Alerts: a repository's git circuit closing (a git fetch went through, or an operator closed
-- it) is an alert of its own kind, the recovery message of repository_circuit_open.
ALTER TABLE alerts DROP CONSTRAINT IF EXISTS alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check CHECK (kind IN (
    'app_circuit_open', 'app_circuit_closed', 'repository_circuit_open',
    'repository_circuit_closed', 'operation_failures', 'failed_rise', 'test'));
