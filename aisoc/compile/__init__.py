"""Compile rules to query languages: Elasticsearch (Lucene, Query DSL, ES|QL, EQL), Kibana rules, SQLite."""
