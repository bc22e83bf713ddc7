namespace FhirSortie.Server.Storage;

/// <summary>
/// The tables, written once with placeholders for the few type names that differ between dialects:
/// {KEY} auto-increment key, {BLOB} bytes, {REAL} floating point, {BIGINT} 64-bit integer.
/// Resource JSON is stored exactly as it is served, so a read does not re-serialise.
/// Index tables carry the resource type so that a look-up on a parameter value stays within one type.
/// </summary>
public static class Schema
{
    public const string V1 = """
        CREATE TABLE resources (
            rkey {KEY},
            type TEXT NOT NULL,
            id TEXT NOT NULL,
            version INTEGER NOT NULL,
            last_updated {BIGINT} NOT NULL,
            deleted INTEGER NOT NULL,
            json {BLOB},
            UNIQUE (type, id)
        );
        CREATE INDEX resources_type_updated ON resources (type, last_updated);
        CREATE INDEX resources_updated ON resources (last_updated);

        CREATE TABLE resource_versions (
            seq {KEY},
            rkey {BIGINT} NOT NULL,
            type TEXT NOT NULL,
            id TEXT NOT NULL,
            version INTEGER NOT NULL,
            last_updated {BIGINT} NOT NULL,
            method TEXT NOT NULL,
            json {BLOB},
            UNIQUE (type, id, version)
        );
        CREATE INDEX resource_versions_updated ON resource_versions (last_updated);
        CREATE INDEX resource_versions_type_updated ON resource_versions (type, last_updated);

        CREATE TABLE search_string (rkey {BIGINT} NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL, value TEXT NOT NULL, exact TEXT NOT NULL);
        CREATE INDEX search_string_value ON search_string (type, param, value, rkey);
        CREATE INDEX search_string_rkey ON search_string (rkey);

        CREATE TABLE search_token (rkey {BIGINT} NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL, system TEXT, code TEXT, text TEXT);
        CREATE INDEX search_token_code ON search_token (type, param, code, rkey);
        CREATE INDEX search_token_label ON search_token (param, system, code, rkey);
        CREATE INDEX search_token_rkey ON search_token (rkey);

        CREATE TABLE search_reference (rkey {BIGINT} NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL, target_type TEXT, target_id TEXT, url TEXT, version TEXT);
        CREATE INDEX search_reference_target ON search_reference (type, param, target_id, rkey);
        CREATE INDEX search_reference_reverse ON search_reference (target_type, target_id, type, param);
        CREATE INDEX search_reference_rkey ON search_reference (rkey);

        CREATE TABLE search_date (rkey {BIGINT} NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL, low {BIGINT} NOT NULL, high {BIGINT} NOT NULL);
        CREATE INDEX search_date_low ON search_date (type, param, low, high, rkey);
        CREATE INDEX search_date_rkey ON search_date (rkey);

        CREATE TABLE search_number (rkey {BIGINT} NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL, low {REAL} NOT NULL, high {REAL} NOT NULL);
        CREATE INDEX search_number_low ON search_number (type, param, low);
        CREATE INDEX search_number_rkey ON search_number (rkey);

        CREATE TABLE search_quantity (rkey {BIGINT} NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL, system TEXT, code TEXT, low {REAL} NOT NULL, high {REAL} NOT NULL);
        CREATE INDEX search_quantity_low ON search_quantity (type, param, low);
        CREATE INDEX search_quantity_rkey ON search_quantity (rkey);

        CREATE TABLE search_uri (rkey {BIGINT} NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL, value TEXT NOT NULL);
        CREATE INDEX search_uri_value ON search_uri (type, param, value, rkey);
        CREATE INDEX search_uri_rkey ON search_uri (rkey);

        -- Composite parameters (code-value-quantity...): one row per tuple so both components match in the same tuple.
        CREATE TABLE search_composite (rkey {BIGINT} NOT NULL, type TEXT NOT NULL, param TEXT NOT NULL, system1 TEXT, code1 TEXT, system2 TEXT, code2 TEXT, low2 {REAL} NOT NULL, high2 {REAL} NOT NULL);
        CREATE INDEX search_composite_code ON search_composite (type, param, code1);
        CREATE INDEX search_composite_rkey ON search_composite (rkey);

        CREATE TABLE resource_compartment (rkey {BIGINT} NOT NULL, compartment_type TEXT NOT NULL, compartment_id TEXT NOT NULL);
        CREATE INDEX resource_compartment_owner ON resource_compartment (compartment_type, compartment_id, rkey);
        CREATE INDEX resource_compartment_rkey ON resource_compartment (rkey);

        CREATE TABLE conditional_keys (type TEXT NOT NULL, condition TEXT NOT NULL, rkey {BIGINT} NOT NULL, PRIMARY KEY (type, condition));

        -- Paged search results, materialised in order when they exceed one page, so that any node can serve any page.
        -- query: the applied parameters (for the links); resource_type: null for system searches.
        CREATE TABLE search_sets (search_id TEXT PRIMARY KEY, owner TEXT NOT NULL, resource_type TEXT, query TEXT NOT NULL, total INTEGER NOT NULL, expires {BIGINT} NOT NULL);
        CREATE INDEX search_sets_expires ON search_sets (expires);
        CREATE TABLE search_set_entries (search_id TEXT NOT NULL, pos INTEGER NOT NULL, rkey {BIGINT} NOT NULL, PRIMARY KEY (search_id, pos));
        """;

    /// <summary>
    /// Authorization server state shared by every gateway node: the keys that sign access tokens and encrypt
    /// authorization codes (generation n+1 replaces n for new tokens; older ones still validate until retired), and
    /// the client-assertion jtis already used (a replay is refused on any node; rows are deleted once expired).
    /// </summary>
    public const string AuthV1 = """
        CREATE TABLE auth_keys (purpose TEXT NOT NULL, generation INTEGER NOT NULL, kid TEXT NOT NULL UNIQUE, material TEXT NOT NULL, created {BIGINT} NOT NULL, retired {BIGINT}, PRIMARY KEY (purpose, generation));
        CREATE TABLE auth_jti (client_id TEXT NOT NULL, jti TEXT NOT NULL, expires {BIGINT} NOT NULL, PRIMARY KEY (client_id, jti));
        CREATE INDEX auth_jti_expires ON auth_jti (expires);
        """;

    /// <summary>
    /// Consent and audit (Consent/): who may see which patient's data, derived in the same transaction as the
    /// Consent or Patient write it comes from (so every gateway node decides from the database, no cache to
    /// invalidate); the organisation that wrote each resource; break-the-glass episodes.
    /// consent_grants: one row per (provision × actor × class × label × purpose); effect permit, deny or team
    /// (the patient's managing organisation); null columns match anything; rows of a deleted source are ignored.
    /// </summary>
    public const string V2Consent = """
        CREATE TABLE consent_grants (source_type TEXT NOT NULL, source_id TEXT NOT NULL, patient_id TEXT NOT NULL, effect TEXT NOT NULL,
            actor_finess TEXT, class TEXT, label TEXT, purpose TEXT, period_start {BIGINT}, period_end {BIGINT});
        CREATE INDEX consent_grants_patient ON consent_grants (patient_id, actor_finess);
        CREATE INDEX consent_grants_source ON consent_grants (source_type, source_id);
        CREATE TABLE resource_origin (type TEXT NOT NULL, id TEXT NOT NULL, finess TEXT NOT NULL, PRIMARY KEY (type, id));
        CREATE TABLE break_glass (patient_id TEXT NOT NULL, client_id TEXT NOT NULL, finess TEXT, reason TEXT NOT NULL, started {BIGINT} NOT NULL, expires {BIGINT} NOT NULL);
        CREATE INDEX break_glass_patient ON break_glass (patient_id, client_id, expires);
        """;

    /// <summary>
    /// SMART App Launch. smart_launches: launch contexts (EHR launch values minted by a host, and patients picked in a
    /// standalone launch), single use and short-lived, in the database so that any node can redeem them.
    /// data_protection_keys: the ASP.NET Core data protection key ring (login cookie, antiforgery tokens), shared by
    /// every node so that a form served by one node can be posted to another.
    /// </summary>
    public const string SmartLaunchV1 = """
        CREATE TABLE smart_launches (launch_id TEXT PRIMARY KEY, kind TEXT NOT NULL, client_id TEXT NOT NULL, patient_id TEXT NOT NULL, user_name TEXT, created {BIGINT} NOT NULL, expires {BIGINT} NOT NULL);
        CREATE INDEX smart_launches_expires ON smart_launches (expires);
        CREATE TABLE data_protection_keys (name TEXT PRIMARY KEY, xml TEXT NOT NULL, created {BIGINT} NOT NULL);
        """;

    /// <summary>
    /// The audit queue (Audit/): one compact row per interaction, written on the request path (reads: committed before
    /// the response starts; writes: in the write's transaction), turned into AuditEvent resources by a materialiser
    /// until AuditStoreV1 replaced both (the table stays, emptied at start by AuditStore.ImportQueuedAsync).
    /// </summary>
    public const string AuditLogV1 = """
        CREATE TABLE audit_log (seq {KEY}, audit_id TEXT NOT NULL UNIQUE, recorded {BIGINT} NOT NULL, entry TEXT NOT NULL);
        """;

    /// <summary>
    /// Subscriptions (Notifications/). subscriptions: the subscriber recorded when a client writes a Subscription
    /// (client, actor kind, FINESS, scopes: what delivery re-checks access with), its criteria and channel, the FHIR
    /// base URL the client used (notifications name resources with it), the delivery status and the count of consecutive failures. notification_outbox: one row per notification to send
    /// (a handshake, or an event = one version of one resource for one subscription), inserted in the transaction of
    /// the write it comes from; a worker claims due rows (lease in next_attempt), posts them and deletes them.
    /// </summary>
    public const string NotificationsV1 = """
        CREATE TABLE subscriptions (id TEXT PRIMARY KEY, client_id TEXT NOT NULL, actor_kind TEXT NOT NULL, finess TEXT, scopes TEXT NOT NULL,
            criteria_type TEXT NOT NULL, criteria TEXT NOT NULL, endpoint TEXT NOT NULL, payload TEXT, headers TEXT NOT NULL,
            status TEXT NOT NULL, failures INTEGER NOT NULL, events {BIGINT} NOT NULL, error TEXT, base_url TEXT NOT NULL);
        CREATE INDEX subscriptions_type ON subscriptions (criteria_type, status);
        CREATE TABLE notification_outbox (seq {KEY}, subscription_id TEXT NOT NULL, kind TEXT NOT NULL, focus_type TEXT, focus_id TEXT,
            focus_version INTEGER, event_number {BIGINT}, attempts INTEGER NOT NULL, next_attempt {BIGINT} NOT NULL, created {BIGINT} NOT NULL);
        CREATE INDEX notification_outbox_due ON notification_outbox (next_attempt);
        CREATE INDEX notification_outbox_subscription ON notification_outbox (subscription_id);
        """;

    /// <summary>
    /// Indexes for the per-resource checks of the consent filter (Search/SearchEngine.AppendAccess): "this resource's
    /// patients" (resource_compartment by rkey and type) and "this resource's labels" (search_token by rkey, param and
    /// code). With only an rkey index, SQLite (no statistics) preferred the index with more leading equalities and
    /// walked every Patient compartment row or every _security token for each candidate resource: a care organisation
    /// other than the author paid 590-860 µs of SQLite time per search on 1,000 patients, growing with the database;
    /// 53-75 µs with these. They replace the rkey-only indexes (their prefix serves the deletes by rkey).
    /// </summary>
    public const string SearchPlansV1 = """
        CREATE INDEX resource_compartment_member ON resource_compartment (rkey, compartment_type, compartment_id);
        DROP INDEX resource_compartment_rkey;
        CREATE INDEX search_token_resource ON search_token (rkey, param, code);
        DROP INDEX search_token_rkey;
        """;

    /// <summary>
    /// The audit store (Audit/AuditStore.cs): the append-only audit records ARE the AuditEvents, served from here (read,
    /// vread, history, search) with their JSON built on demand, instead of being materialised as generic resources.
    /// audit_events: one row per interaction (id = the AuditEvent id), with the columns an auditor filters on; entry is
    /// the AuditEntry JSON. audit_keys: the references and identifiers searched (patient, entity, agent,
    /// agent:identifier), one narrow row each, with the one index their look-up needs.
    /// AuditEvents an older build materialised as resources move here with their stored JSON (json, last_updated) and
    /// their index values, and leave resources, resource_versions and the index tables. Rows still queued in audit_log
    /// by an older build are moved by AuditStore.ImportQueuedAsync at start (their JSON needs parsing).
    /// </summary>
    public const string AuditStoreV1 = """
        CREATE TABLE audit_events (seq {KEY}, id TEXT NOT NULL UNIQUE, recorded {BIGINT} NOT NULL, interaction TEXT NOT NULL,
            action TEXT NOT NULL, outcome TEXT NOT NULL, entry TEXT, json {BLOB}, last_updated {BIGINT});
        CREATE INDEX audit_events_recorded ON audit_events (recorded, seq);
        CREATE TABLE audit_keys (audit_id TEXT NOT NULL, param TEXT NOT NULL, sys TEXT NOT NULL, value TEXT NOT NULL);
        CREATE INDEX audit_keys_value ON audit_keys (value, param, audit_id);

        INSERT INTO audit_events (id, recorded, interaction, action, outcome, entry, json, last_updated)
        SELECT r.id,
            COALESCE((SELECT MIN(d.low) FROM search_date d WHERE d.rkey = r.rkey AND d.param = 'date'), r.last_updated),
            COALESCE((SELECT MIN(t.code) FROM search_token t WHERE t.rkey = r.rkey AND t.param = 'subtype'), ''),
            COALESCE((SELECT MIN(t.code) FROM search_token t WHERE t.rkey = r.rkey AND t.param = 'action'), ''),
            COALESCE((SELECT MIN(t.code) FROM search_token t WHERE t.rkey = r.rkey AND t.param = 'outcome'), ''),
            NULL, r.json, r.last_updated
        FROM resources r WHERE r.type = 'AuditEvent' AND r.deleted = 0 ORDER BY r.rkey;
        INSERT INTO audit_keys (audit_id, param, sys, value)
        SELECT DISTINCT r.id, x.param, x.target_type, x.target_id FROM resources r JOIN search_reference x ON x.rkey = r.rkey
        WHERE r.type = 'AuditEvent' AND r.deleted = 0 AND x.param IN ('patient', 'entity', 'agent') AND x.target_type IS NOT NULL AND x.target_id IS NOT NULL;
        INSERT INTO audit_keys (audit_id, param, sys, value)
        SELECT DISTINCT r.id, t.param, t.system, t.code FROM resources r JOIN search_token t ON t.rkey = r.rkey
        WHERE r.type = 'AuditEvent' AND r.deleted = 0 AND t.param = 'agent:identifier' AND t.system IS NOT NULL AND t.code IS NOT NULL;

        DELETE FROM search_string WHERE rkey IN (SELECT rkey FROM resources WHERE type = 'AuditEvent');
        DELETE FROM search_token WHERE rkey IN (SELECT rkey FROM resources WHERE type = 'AuditEvent');
        DELETE FROM search_reference WHERE rkey IN (SELECT rkey FROM resources WHERE type = 'AuditEvent');
        DELETE FROM search_date WHERE rkey IN (SELECT rkey FROM resources WHERE type = 'AuditEvent');
        DELETE FROM search_number WHERE rkey IN (SELECT rkey FROM resources WHERE type = 'AuditEvent');
        DELETE FROM search_quantity WHERE rkey IN (SELECT rkey FROM resources WHERE type = 'AuditEvent');
        DELETE FROM search_uri WHERE rkey IN (SELECT rkey FROM resources WHERE type = 'AuditEvent');
        DELETE FROM search_composite WHERE rkey IN (SELECT rkey FROM resources WHERE type = 'AuditEvent');
        DELETE FROM resource_compartment WHERE rkey IN (SELECT rkey FROM resources WHERE type = 'AuditEvent');
        DELETE FROM conditional_keys WHERE type = 'AuditEvent';
        DELETE FROM resource_versions WHERE type = 'AuditEvent';
        DELETE FROM resources WHERE type = 'AuditEvent';
        """;

    /// <summary>
    /// SQLite only: audit_keys as one b-tree (WITHOUT ROWID, keyed by what the search looks up: value, param) instead of a
    /// rowid table plus an index holding the same values: the audit journal's moves write each key once instead of
    /// twice (bench/results/2026-12-06-audit-log.md). Same columns, same look-ups; duplicates (none are written: a
    /// record's keys are distinct) are dropped.
    /// </summary>
    public const string AuditKeysSqliteV2 = """
        CREATE TABLE audit_keys_v2 (value TEXT NOT NULL, param TEXT NOT NULL, audit_id TEXT NOT NULL, sys TEXT NOT NULL,
            PRIMARY KEY (value, param, audit_id, sys)) WITHOUT ROWID;
        INSERT OR IGNORE INTO audit_keys_v2 (value, param, audit_id, sys) SELECT value, param, audit_id, sys FROM audit_keys;
        DROP TABLE audit_keys;
        ALTER TABLE audit_keys_v2 RENAME TO audit_keys;
        """;

    /// <summary>
    /// SQLite only: fewer b-trees per index row, so that a write spends less of the single writer's turn in SQLite's
    /// b-tree inserts (an exit package writes about 150 index rows; each went into a rowid table plus 2-3 indexes).
    /// - search_string, search_date, search_number, search_uri, resource_compartment: WITHOUT ROWID, keyed by the value
    ///   look-up (the table is that index), plus the rkey index for deletes and per-resource checks. Whole-row duplicates
    ///   (a name given twice...) are kept once (INSERT OR IGNORE): search selects rkeys, sorts take MIN/MAX, so they were
    ///   redundant.
    /// - search_token, search_reference keep their rowid (code, target_id and url may be NULL, which a WITHOUT ROWID key
    ///   refuses) but lose one index each: search_token_code (type, param, code) and search_token_label (param, system,
    ///   code) become one (param, code, type, system, rkey), which answers both (the type, when given, is an equality
    ///   after the code). search_token_resource gains system, so that it covers the per-resource look-ups that name a
    ///   system (an organisation's FINESS, a DocumentReference's category): without it SQLite (no statistics) preferred the
    ///   covering value index and walked every row of the parameter. search_reference_target (type, param, target_id) and search_reference_reverse (target_type,
    ///   target_id, type, param) become one (target_id, target_type, type, param, rkey), which answers value searches,
    ///   chains, _has and _revinclude; references by URL (canonicals, absolute URLs: few rows) get a partial index.
    /// search_quantity and search_composite are unchanged (nullable system/code, few rows). PostgreSQL keeps V1's tables
    /// and takes the index part (<see cref="SearchIndexesPostgresV2"/>).
    /// </summary>
    public const string SearchIndexesSqliteV2 = TokenAndReferenceIndexesV2 + "\n" + """
        CREATE TABLE search_string_v2 (type TEXT NOT NULL, param TEXT NOT NULL, value TEXT NOT NULL, rkey INTEGER NOT NULL, exact TEXT NOT NULL,
            PRIMARY KEY (type, param, value, rkey, exact)) WITHOUT ROWID;
        INSERT OR IGNORE INTO search_string_v2 (type, param, value, rkey, exact) SELECT type, param, value, rkey, exact FROM search_string;
        DROP TABLE search_string;
        ALTER TABLE search_string_v2 RENAME TO search_string;
        CREATE INDEX search_string_rkey ON search_string (rkey);

        CREATE TABLE search_date_v2 (type TEXT NOT NULL, param TEXT NOT NULL, low INTEGER NOT NULL, high INTEGER NOT NULL, rkey INTEGER NOT NULL,
            PRIMARY KEY (type, param, low, high, rkey)) WITHOUT ROWID;
        INSERT OR IGNORE INTO search_date_v2 (type, param, low, high, rkey) SELECT type, param, low, high, rkey FROM search_date;
        DROP TABLE search_date;
        ALTER TABLE search_date_v2 RENAME TO search_date;
        CREATE INDEX search_date_rkey ON search_date (rkey);

        CREATE TABLE search_number_v2 (type TEXT NOT NULL, param TEXT NOT NULL, low REAL NOT NULL, high REAL NOT NULL, rkey INTEGER NOT NULL,
            PRIMARY KEY (type, param, low, high, rkey)) WITHOUT ROWID;
        INSERT OR IGNORE INTO search_number_v2 (type, param, low, high, rkey) SELECT type, param, low, high, rkey FROM search_number;
        DROP TABLE search_number;
        ALTER TABLE search_number_v2 RENAME TO search_number;
        CREATE INDEX search_number_rkey ON search_number (rkey);

        CREATE TABLE search_uri_v2 (type TEXT NOT NULL, param TEXT NOT NULL, value TEXT NOT NULL, rkey INTEGER NOT NULL,
            PRIMARY KEY (type, param, value, rkey)) WITHOUT ROWID;
        INSERT OR IGNORE INTO search_uri_v2 (type, param, value, rkey) SELECT type, param, value, rkey FROM search_uri;
        DROP TABLE search_uri;
        ALTER TABLE search_uri_v2 RENAME TO search_uri;
        CREATE INDEX search_uri_rkey ON search_uri (rkey);

        CREATE TABLE resource_compartment_v2 (compartment_type TEXT NOT NULL, compartment_id TEXT NOT NULL, rkey INTEGER NOT NULL,
            PRIMARY KEY (compartment_type, compartment_id, rkey)) WITHOUT ROWID;
        INSERT OR IGNORE INTO resource_compartment_v2 (compartment_type, compartment_id, rkey) SELECT compartment_type, compartment_id, rkey FROM resource_compartment;
        DROP TABLE resource_compartment;
        ALTER TABLE resource_compartment_v2 RENAME TO resource_compartment;
        CREATE INDEX resource_compartment_member ON resource_compartment (rkey, compartment_type, compartment_id);
        """;

    /// <summary>
    /// PostgreSQL: the index layout of <see cref="SearchIndexesSqliteV2"/> where PostgreSQL can take it, so that a write
    /// maintains fewer b-trees per index row (every table is a heap plus its indexes on PostgreSQL; there is no
    /// WITHOUT ROWID): search_token keeps two indexes instead of three (value (param, code, type, system, rkey) answers
    /// both code and label look-ups; resource (rkey, param, code, system) covers the per-resource checks and the
    /// deletes), search_reference two instead of three (target (target_id, target_type, type, param, rkey) answers
    /// value searches, chains, _has and _revinclude; the rkey index serves _include and deletes) plus a partial index
    /// for references by URL. About 90 fewer index insertions per 15-resource exit package (of about 550), 12 % less WAL
    /// (bench/pg-write-cost.sh, bench/results/2026-12-06-session9.md).
    /// The search SQL is the same on both dialects. On a large database the migration builds two indexes while
    /// holding the tables' write lock: run it at a quiet hour (nodes wait on the migration lock meanwhile).
    /// </summary>
    public const string SearchIndexesPostgresV2 = TokenAndReferenceIndexesV2;

    /// <summary>
    /// PostgreSQL: statistics on the columns a search index row is looked up by together. Without them the planner
    /// multiplies the selectivities of type, param, code and system as if they were independent (they are not: code
    /// 11490-0 is always a DocumentReference's type, LOINC), estimates one row where there are one per person, and drives
    /// a patient's compartment search from the token instead of the compartment: $patient-context took 1.2 s at 10 k
    /// resources and 9.4 s at 100 k, its DocumentReference section alone 718 ms → 0.4 ms once estimated right
    /// (bench/results/2026-12-07-scale.md). ANALYZE (and autovacuum's) keeps them current; SQLite has no such statistics.
    /// </summary>
    public const string SearchStatisticsPostgresV1 = """
        CREATE STATISTICS IF NOT EXISTS search_token_values (mcv, dependencies) ON param, code, type, system FROM search_token;
        CREATE STATISTICS IF NOT EXISTS search_reference_targets (mcv, dependencies) ON type, param, target_type, target_id FROM search_reference;
        ANALYZE search_token;
        ANALYZE search_reference;
        """;

    /// <summary>The search_token and search_reference indexes of version 2, the same on both dialects.</summary>
    private const string TokenAndReferenceIndexesV2 = """
        DROP INDEX search_token_code;
        DROP INDEX search_token_label;
        CREATE INDEX search_token_value ON search_token (param, code, type, system, rkey);
        DROP INDEX search_token_resource;
        CREATE INDEX search_token_resource ON search_token (rkey, param, code, system);

        DROP INDEX search_reference_target;
        DROP INDEX search_reference_reverse;
        CREATE INDEX search_reference_target ON search_reference (target_id, target_type, type, param, rkey);
        CREATE INDEX search_reference_url ON search_reference (type, param, url) WHERE url IS NOT NULL;
        """;

    /// <summary>
    /// SQLite, older builds only: the audit journal as one SQLite file per lane (audit-journal-N.db). Journals are
    /// segment files now (Audit/AuditJournalSegment.cs); what an older build left in such a file is moved once and the
    /// file deleted (Audit/AuditJournalLegacy.cs). Kept for that reading and its test.
    /// </summary>
    public const string AuditJournalV1 = """
        CREATE TABLE IF NOT EXISTS audit_journal (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, recorded INTEGER NOT NULL,
            interaction TEXT NOT NULL, action TEXT NOT NULL, outcome TEXT NOT NULL, entry TEXT NOT NULL, keys TEXT NOT NULL);
        """;


    public static string For(string ddl, string key, string blob, string real, string bigint) =>
        ddl.Replace("{KEY}", key).Replace("{BLOB}", blob).Replace("{REAL}", real).Replace("{BIGINT}", bigint);
}
