FROM python:3.11-slim
WORKDIR /srv/jiahe
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY alembic ./alembic
RUN pip install --no-cache-dir -e . && useradd --system jiahe
USER jiahe
EXPOSE 8000
# Migrate on start, then serve; secrets come from the environment (JIAHE_ENV=production
# refuses to start without them).
CMD ["jiahe", "serve", "--migrate", "--host", "0.0.0.0", "--port", "8000"]
