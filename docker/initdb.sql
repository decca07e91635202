-- Sample warehouse for docker/compose.yml: the table the example project
-- (the top-level retl.json and mappings/) reads, with 5,000 generated customers.
CREATE SCHEMA analytics;
CREATE TABLE analytics.customers (
    id          bigint PRIMARY KEY,
    email       text,
    first_name  text,
    last_name   text,
    plan        text NOT NULL,
    mrr         numeric(10,2) NOT NULL,
    active      boolean NOT NULL,
    created_at  timestamptz NOT NULL,
    city        text,
    country     text
);
INSERT INTO analytics.customers
SELECT g,
       'customer' || g || '@example.com',
       'First' || g,
       'Last' || g,
       (ARRAY['free', 'pro', 'enterprise'])[1 + g % 3],
       ((g * 37) % 1000)::numeric(10,2),
       g % 10 <> 0,
       timestamptz '2023-01-01 00:00:00+00' + g * interval '1 hour',
       (ARRAY['Berlin', 'Lisbon', 'Austin', 'Osaka'])[1 + g % 4],
       (ARRAY['de', 'pt', 'us', 'jp'])[1 + g % 4]
FROM generate_series(1, 5000) g;
