"""Online predictions from the registry's champion: ``cnai serve``.

- :mod:`cnai.serving.inputs`: request bodies (Open Inference Protocol v2 and
  ``/predict``) checked against the model's signature, into one float32 matrix;
- :mod:`cnai.serving.model`: a registered version loaded for serving;
- :mod:`cnai.serving.champion`: which version serves, and the hot swap when the
  alias moves;
- :mod:`cnai.serving.batcher`: concurrent requests predicted together;
- :mod:`cnai.serving.app`: the HTTP routes (Starlette, run by uvicorn);
- :mod:`cnai.serving.kserve`: keeping a KServe InferenceService on the champion.
"""
