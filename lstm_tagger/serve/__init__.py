"""``lstm-tag serve``: a tagging server, its REST API (and UDPipe's), and a web page to try a model.

A library that tags a sentence at a time cannot pay a process start and a model load per
sentence: the server loads each model once (``lstm_tagger.load``), tags the sentences of many
clients' requests together (``batching``) and answers with ``lstm-tag predict``'s very bytes.

- ``app``: the FastAPI application (``create_app``) and its routes;
- ``bodies``: reading a request within the limits, one clear error per mistake;
- ``inputs``: a request's input read into sentences, and the tagged document;
- ``batching``: the thread per model that tags waiting requests together;
- ``models``: the models by name; ``server``: uvicorn, the socket, and stopping cleanly;
- ``static/``: the web page (plain HTML, CSS and JavaScript, nothing fetched from elsewhere).

Only ``server.serve`` is imported by the command line, and it imports FastAPI and uvicorn
(``pip install 'lstm-tag[serve]'``) when called.
"""
