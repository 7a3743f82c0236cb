-- The users' SQL user for servers whose access is managed with SQL (access_management = 1),
-- the same as users.d/pulse-query.xml: see users-sql.md. Run it as an administrator after
-- replacing CHANGE_ME; with a cluster, add ON CLUSTER pulse after each object's name.
-- Needs config.d/pulse-custom-settings.xml (custom_settings_prefixes = SQL_).

CREATE SETTINGS PROFILE IF NOT EXISTS pulse_query SETTINGS
    readonly = 2,
    SQL_pulse_project = '',
    SQL_pulse_all_projects = '0',
    max_memory_usage = 2147483648 MAX 8589934592,
    max_execution_time = 30 MAX 300,
    max_threads = 4 MAX 16,
    allow_ddl = 0 CONST,
    allow_introspection_functions = 0 CONST;

CREATE USER IF NOT EXISTS pulse_query IDENTIFIED WITH sha256_password BY 'CHANGE_ME'
    SETTINGS PROFILE 'pulse_query';

GRANT SELECT ON default.runs, SELECT ON default.metrics, SELECT ON default.system_metrics,
    SELECT ON default.histograms, SELECT ON default.media, SELECT ON default.model_graphs,
    SELECT ON default.alerts, SELECT ON default.sweeps, SELECT ON default.sweep_trials, SELECT ON default.logs,
    SELECT ON default.artifacts, SELECT ON default.artifact_versions, SELECT ON default.artifact_files, SELECT ON default.artifact_aliases, SELECT ON default.artifact_usage TO pulse_query;

-- The cluster's shard tables, read on every shard as the user who asked.
GRANT SELECT ON default.runs_local, SELECT ON default.metrics_local, SELECT ON default.system_metrics_local,
    SELECT ON default.histograms_local, SELECT ON default.media_local, SELECT ON default.model_graphs_local,
    SELECT ON default.alerts_local, SELECT ON default.sweeps_local, SELECT ON default.sweep_trials_local, SELECT ON default.logs_local,
    SELECT ON default.artifacts_local, SELECT ON default.artifact_versions_local, SELECT ON default.artifact_files_local, SELECT ON default.artifact_aliases_local, SELECT ON default.artifact_usage_local
    TO pulse_query;

GRANT SELECT ON system.one, SELECT ON system.numbers, SELECT ON system.numbers_mt, SELECT ON system.zeros,
    SELECT ON system.zeros_mt, SELECT ON system.aggregate_function_combinators,
    SELECT ON system.data_type_families, SELECT ON system.functions, SELECT ON system.tables,
    SELECT ON system.columns, SELECT ON system.projections TO pulse_query;

-- Each key's project, as the ingest sends it with every query; an all-projects key sends
-- SQL_pulse_all_projects = '1'. Nothing else may read another project's rows.
CREATE ROW POLICY IF NOT EXISTS pulse_project ON default.runs, default.runs_local, default.metrics, default.metrics_local, default.system_metrics, default.system_metrics_local, default.histograms, default.histograms_local, default.media, default.media_local, default.model_graphs, default.model_graphs_local, default.alerts, default.alerts_local, default.sweeps, default.sweeps_local, default.sweep_trials, default.sweep_trials_local, default.logs, default.logs_local, default.artifacts, default.artifacts_local, default.artifact_versions, default.artifact_versions_local, default.artifact_files, default.artifact_files_local, default.artifact_aliases, default.artifact_aliases_local, default.artifact_usage, default.artifact_usage_local
    USING toString(getSetting('SQL_pulse_all_projects')) = '1' OR project = toString(getSetting('SQL_pulse_project'))
    AS PERMISSIVE TO pulse_query;

-- Once a table has a row policy, users without one see none of its rows: everyone else sees all.
CREATE ROW POLICY IF NOT EXISTS pulse_everyone_else ON default.runs, default.runs_local, default.metrics, default.metrics_local, default.system_metrics, default.system_metrics_local, default.histograms, default.histograms_local, default.media, default.media_local, default.model_graphs, default.model_graphs_local, default.alerts, default.alerts_local, default.sweeps, default.sweeps_local, default.sweep_trials, default.sweep_trials_local, default.logs, default.logs_local, default.artifacts, default.artifacts_local, default.artifact_versions, default.artifact_versions_local, default.artifact_files, default.artifact_files_local, default.artifact_aliases, default.artifact_aliases_local, default.artifact_usage, default.artifact_usage_local
    USING 1
    AS PERMISSIVE TO ALL EXCEPT pulse_query;
