"""VectorIO providers."""

from __future__ import annotations

from stackkit.apis.datatypes import Api, ProviderSpec


def available_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.vector_io,
            provider_type="inline::faiss",
            module="stackkit.providers.inline.faiss",
            config_class="stackkit.providers.inline.faiss.FaissConfig",
            pip_packages=("faiss-cpu", "numpy", "tantivy"),
            api_dependencies=(Api.inference,),
            optional_api_dependencies=(Api.files,),
            extra="faiss",
            description="FAISS vector stores, persisted incrementally; keyword and hybrid search via sqlite FTS5 "
                        "or tantivy (keyword_index).",
        ),
        ProviderSpec(
            api=Api.vector_io,
            provider_type="inline::sqlite-vec",
            module="stackkit.providers.inline.sqlite_vec",
            config_class="stackkit.providers.inline.sqlite_vec.SqliteVecConfig",
            pip_packages=("sqlite-vec", "pysqlite3-binary", "numpy"),
            api_dependencies=(Api.inference,),
            optional_api_dependencies=(Api.files,),
            extra="sqlite-vec",
            description="Vector stores in one sqlite file (sqlite-vec + FTS5, WAL).",
        ),
        ProviderSpec(
            api=Api.vector_io,
            provider_type="remote::chroma",
            module="stackkit.providers.remote.chroma",
            config_class="stackkit.providers.remote.chroma.ChromaConfig",
            pip_packages=("chromadb", "numpy"),
            api_dependencies=(Api.inference,),
            optional_api_dependencies=(Api.files,),
            extra="chroma",
            description="Vectors in a Chroma server; chunk text, keyword search and status in local sqlite.",
        ),
        ProviderSpec(
            api=Api.vector_io,
            provider_type="remote::pgvector",
            module="stackkit.providers.remote.pgvector",
            config_class="stackkit.providers.remote.pgvector.PgVectorConfig",
            pip_packages=("psycopg[binary]", "numpy"),
            api_dependencies=(Api.inference,),
            optional_api_dependencies=(Api.files,),
            extra="pgvector",
            description="Vector stores wholly in PostgreSQL with pgvector (HNSW per store, full-text keyword "
                        "search); replicas on one database share them.",
        ),
        ProviderSpec(
            api=Api.vector_io,
            provider_type="inline::fake",
            module="stackkit.providers.inline.fake_vector_io",
            config_class="stackkit.providers.inline.fake_vector_io.FakeVectorIOConfig",
            api_dependencies=(Api.inference,),
            optional_api_dependencies=(Api.files,),
            description="Vector stores in memory (the real store logic, brute-force index); for tests and examples.",
        ),
    ]
