# Multi-stage build of the FhirSortie gateway.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /source
COPY Directory.Build.props Directory.Packages.props FhirSortie.sln ./
COPY src/ src/
COPY conformance/ conformance/
COPY profiles/ profiles/
RUN dotnet publish src/FhirSortie.Server/FhirSortie.Server.csproj -c Release -o /app --no-self-contained

FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
# curl for the health check only.
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*
RUN groupadd --system fhirsortie && useradd --system --gid fhirsortie --home-dir /app fhirsortie \
    && mkdir -p /var/lib/fhirsortie && chown fhirsortie:fhirsortie /var/lib/fhirsortie
WORKDIR /app
COPY --from=build /app ./
ENV ASPNETCORE_URLS=http://0.0.0.0:8080 \
    ASPNETCORE_ENVIRONMENT=Production \
    FhirSortie__DataDirectory=/var/lib/fhirsortie
VOLUME /var/lib/fhirsortie
USER fhirsortie
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD curl -fsS http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["dotnet", "FhirSortie.Server.dll"]
