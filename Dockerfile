# Multi-stage build of the FhirSortie gateway: the SDK image builds, the smaller ASP.NET runtime image runs,
# as a non-root user, with the embedded SQLite database on a volume.
# Base images pinned to a release (SDK 10.0.401, ASP.NET Core runtime 10.0.12: the versions the tests run on), so that
# a rebuild is the same build; raise both together, on purpose, for runtime security fixes (or pin @sha256 digests).
FROM mcr.microsoft.com/dotnet/sdk:10.0.401 AS build
WORKDIR /source
# Restore first, from the project files only, so that the package layer is reused while only code changes.
COPY .editorconfig Directory.Build.props Directory.Packages.props ./
COPY src/FhirSortie.Server/FhirSortie.Server.csproj src/FhirSortie.Server/
RUN dotnet restore src/FhirSortie.Server/FhirSortie.Server.csproj
COPY src/ src/
# SearchParameters, compartments and profiles are read at run time from beside the DLL (see FhirSortie.Server.csproj).
COPY conformance/ conformance/
COPY profiles/ profiles/
RUN dotnet publish src/FhirSortie.Server/FhirSortie.Server.csproj -c Release -o /app --no-restore --no-self-contained -p:UseAppHost=false \
    && test -f /app/conformance/compartment-patient.json

FROM mcr.microsoft.com/dotnet/aspnet:10.0.12 AS runtime
# curl for the health check only.
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*
# The image's built-in non-root user "app" ($APP_UID, uid and gid 1654): numeric, so Kubernetes runAsNonRoot can verify
# it. The data volume belongs to it: a bind-mounted host folder must be writable by uid 1654 (chown 1654:1654 DIR).
RUN mkdir -p /var/lib/fhirsortie && chown "$APP_UID:$APP_UID" /var/lib/fhirsortie
WORKDIR /app
# Owned by root and read-only for the service user: it can write its data volume only.
COPY --from=build /app ./
ENV ASPNETCORE_URLS=http://0.0.0.0:8080 \
    ASPNETCORE_ENVIRONMENT=Production \
    FhirSortie__DataDirectory=/var/lib/fhirsortie
VOLUME /var/lib/fhirsortie
USER $APP_UID
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD curl -fsS http://127.0.0.1:8080/health || exit 1
# Exec form: the server is PID 1 and receives SIGTERM for a graceful stop.
ENTRYPOINT ["dotnet", "FhirSortie.Server.dll"]
