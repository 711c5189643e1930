# One image, several roles: `airgate serve`, `airgate worker`, `airgate sandbox` (docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core core
COPY airgate airgate
COPY bot bot
COPY ussd ussd
COPY sandbox sandbox
COPY api api
RUN pip install --no-cache-dir .
ENV AIRGATE_HTTP_HOST=0.0.0.0
EXPOSE 8080
ENTRYPOINT ["airgate"]
CMD ["serve"]
