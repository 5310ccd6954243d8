#!/usr/bin/env bash
# Install the Spark engine on this machine, without Maven: safe to run again.
#
#   scripts/install_spark.sh
#
# 1. Debian packages (apt-get as root, else through sudo): a Java 17 runtime, the JDBC
#    drivers of the Iceberg catalog database (SQLite, PostgreSQL), jarjar and ASM.
# 2. Into .venv (scripts/setup.sh first when there is none): pyspark 3.5
#    and snowpark-connect-deps-iceberg, the PyPI package that ships Iceberg's Spark runtime jar.
# 3. Iceberg's relocated Jackson classes, which that runtime jar lacks, rebuilt from pyspark's
#    own Jackson jars with jarjar (no jar is downloaded or committed: they are built here).
# 4. The jar folder Spark loads (lakehouse_assets/silver/spark/session.py finds it):
#    .venv/share/lakehouse-spark/jars/ (or $LAKEHOUSE_SPARK_JARS_DIR), links plus the built jar.
#
# On a cluster none of this is needed: spark.jars.packages with
# org.apache.iceberg:iceberg-spark-runtime-3.5_2.12:1.10.x does it (see README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

PYSPARK_VERSION=3.5.9
ICEBERG_DEPS_VERSION=1.0.3   # snowpark-connect-deps-iceberg: iceberg-spark-runtime-3.5_2.12-1.10.2.jar
ICEBERG_RUNTIME=iceberg-spark-runtime-3.5_2.12-1.10.2.jar
JACKSON_VERSION=2.15.2       # the Jackson of pyspark 3.5's jars/
APT_PACKAGES=(openjdk-17-jre-headless libxerial-sqlite-jdbc-java libpostgresql-jdbc-java libjarjar-java libasm-java)

log() { printf 'install_spark: %s\n' "$*" >&2; }

# ---------------------------------------------------------------- 1. Debian packages
missing=()
for package in "${APT_PACKAGES[@]}"; do
    if [ "$package" = openjdk-17-jre-headless ] && command -v java >/dev/null \
        && java -version 2>&1 | grep -Eq 'version "(17|21)'; then
        continue  # a Java 17 (or 21) runtime is already there
    fi
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        sudo=()
    elif command -v sudo >/dev/null; then
        sudo=(sudo)
    else
        log "need root or sudo to install: ${missing[*]}"
        exit 1
    fi
    log "apt-get install ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---------------------------------------------------------------- 2. Python packages
[ -x .venv/bin/python ] || scripts/setup.sh
python=.venv/bin/python
wanted=("pyspark==$PYSPARK_VERSION" "snowpark-connect-deps-iceberg==$ICEBERG_DEPS_VERSION")
if ! "$python" - "${wanted[@]}" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
for requirement in sys.argv[1:]:
    name, wanted = requirement.split("==")
    try:
        if version(name) != wanted:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
EOF
then
    log "pip install ${wanted[*]} (pyspark builds from its sdist: about a minute)"
    "$python" -m pip install --quiet "${wanted[@]}"
fi

# ---------------------------------------------------------------- 3. + 4. the jar folder
site=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
jars=${LAKEHOUSE_SPARK_JARS_DIR:-$("$python" -c 'import sys; print(sys.prefix)')/share/lakehouse-spark/jars}
mkdir -p "$jars"
runtime=$site/snowpark_connect_deps_iceberg/jars/$ICEBERG_RUNTIME
[ -f "$runtime" ] || { log "$runtime is missing"; exit 1; }
ln -sf "$runtime" "$jars/$ICEBERG_RUNTIME"
ln -sf /usr/share/java/sqlite-jdbc.jar "$jars/sqlite-jdbc.jar"
ln -sf /usr/share/java/postgresql.jar "$jars/postgresql-jdbc.jar"

shaded=$jars/iceberg-shaded-jackson-$JACKSON_VERSION.jar
if [ ! -s "$shaded" ]; then
    log "relocating pyspark's Jackson $JACKSON_VERSION into org.apache.iceberg.shaded (jarjar)"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    # Merge the four jars; drop what jarjar 1.4 cannot or need not process.
    "$python" - "$site/pyspark/jars" "$JACKSON_VERSION" "$work/merged.jar" <<'EOF'
import sys
import zipfile
from pathlib import Path

source, version, target = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
seen = set()
with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
    for name in ("annotations", "core", "databind", "datatype-jsr310"):
        with zipfile.ZipFile(source / f"jackson-{name}-{version}.jar") as jar:
            for entry in jar.infolist():
                path = entry.filename
                if (
                    path in seen
                    or path.endswith("/")
                    or path.endswith("module-info.class")
                    or path.startswith("META-INF/versions/")
                    or path == "META-INF/MANIFEST.MF"
                    or path.startswith("META-INF/services/")
                ):
                    continue
                seen.add(path)
                out.writestr(entry, jar.read(entry))
EOF
    echo 'rule com.fasterxml.jackson.** org.apache.iceberg.shaded.com.fasterxml.jackson.@1' > "$work/rules.txt"
    java -cp /usr/share/java/jarjar.jar:/usr/share/java/asm.jar:/usr/share/java/asm-commons.jar:/usr/share/java/asm-tree.jar:/usr/share/java/asm-util.jar:/usr/share/java/asm-analysis.jar \
        com.tonicsystems.jarjar.Main process "$work/rules.txt" "$work/merged.jar" "$work/shaded.jar"
    "$python" - "$work/shaded.jar" <<'EOF'
import sys
import zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
needed = "org/apache/iceberg/shaded/com/fasterxml/jackson/core/JsonFactoryBuilder.class"
if needed not in names or any(n.startswith("com/fasterxml/") for n in names):
    sys.exit(f"relocation failed: {needed} missing or unrelocated classes left")
EOF
    mv "$work/shaded.jar" "$shaded"
fi

# ---------------------------------------------------------------- check
"$python" -c 'from lakehouse_assets.silver.spark.session import spark_jars; print("\n".join(spark_jars()))' >/dev/null
log "ready: $(cd "$jars" && ls | tr '\n' ' ')"
