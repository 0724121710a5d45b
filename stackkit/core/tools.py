"""Server-side tools of the Responses engine: the model calls them like functions, the server runs them.

`file_search` searches stackkit's vector stores (hybrid search over the stores a request names), returns
the passages to the model, and the answer cites the files they came from.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from stackkit.apis.agents import FileSearchCallItem, FileSearchResult, FileSearchTool
from stackkit.apis.vector_io import SearchVectorStoreRequest, VectorIO
from stackkit.errors import InvalidRequestError

FILE_SEARCH = "file_search"
FILE_SEARCH_FUNCTION = {
    "type": "function",
    "function": {
        "name": FILE_SEARCH,
        "description": "Search the user's uploaded files for passages relevant to a query.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string", "description": "what to find"}},
                       "required": ["query"]},
    },
}


def check_server_tools(tools: list[Any], vector_io: VectorIO | None) -> None:
    if any(isinstance(t, FileSearchTool) for t in tools) and vector_io is None:
        raise InvalidRequestError("file_search needs a vector_io provider; add one to run.yaml.", param="tools")


async def run_file_search(tool: FileSearchTool, arguments: str, vector_io: VectorIO
                          ) -> tuple[FileSearchCallItem, str, list[dict[str, Any]]]:
    """The call's output item, the text the model reads, and the citations of the files found."""
    try:
        query = str(json.loads(arguments or "{}").get("query") or "")
    except (json.JSONDecodeError, AttributeError):
        query = arguments
    results: list[FileSearchResult] = []
    for store_id in tool.vector_store_ids:
        page = await vector_io.search_vector_store(SearchVectorStoreRequest(
            vector_store_id=store_id, query=query or " ", max_num_results=tool.max_num_results, filters=tool.filters,
            search_mode="hybrid", **({"ranking_options": tool.ranking_options} if tool.ranking_options else {})))
        results += [FileSearchResult(file_id=r.file_id, filename=r.filename, score=r.score, attributes=r.attributes,
                                     text="".join(c.text for c in r.content)) for r in page.data]
    results = sorted(results, key=lambda r: -(r.score or 0))[: tool.max_num_results]
    item = FileSearchCallItem(id=f"fs_{uuid.uuid4().hex}", queries=[query], status="completed", results=results)
    text = "\n\n".join(f"[{r.filename}] {r.text}" for r in results) or "No matching passages were found."
    cited = {r.file_id: r.filename for r in results if r.file_id}
    citations = [{"type": "file_citation", "file_id": f, "filename": n or f, "index": 0} for f, n in cited.items()]
    return item, text, citations
