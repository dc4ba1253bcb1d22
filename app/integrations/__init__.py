"""ideaforge for other programs' agents: LangChain tools and the pipeline as a Runnable."""
