from setuptools import find_packages, setup

# Pinned together: the dagster integration libraries pin dagster exactly, they need pandas < 3,
# and duckdb must match the duckdb-extension-* wheels that supply extensions offline.
INSTALL_REQUIRES = [
    "dagster==1.13.27",
    "dagster-webserver==1.13.27",
    "dagster-duckdb==0.29.27",
    "dagster-dg-cli==1.13.27",
    "duckdb==1.5.5",
    # DuckLake and its PostgreSQL catalog, and the SQLite reader for the consent database, loaded offline
    # from wheels (duckdb_extensions.import_extension).
    "duckdb-extensions==1.5.5",
    "duckdb-extension-ducklake==1.5.5",
    "duckdb-extension-postgres==1.5.5",
    "duckdb-extension-sqlite-scanner==1.5.5",
    "pandas>=2.2,<3",
    "pandera[ibis]==0.35.0",
    "ibis-framework[duckdb]==12.0.0",
    "SQLAlchemy>=2.0,<2.1",
    "dagster-postgres==0.29.27",
    "psycopg2-binary>=2.9,<3",
    "PyYAML>=6.0,<7",
]

setup(
    name="streamgov",
    version="0.1.0",
    description="Governance of personal data in a media streaming service, as a Dagster asset graph",
    packages=find_packages(exclude=["streamgov_dagster_tests"]),
    package_data={"streamgov_dagster": ["policies/*.yaml", "lib/rules/*.sql"]},
    include_package_data=True,
    python_requires=">=3.11,<3.13",
    install_requires=INSTALL_REQUIRES,
    extras_require={"dev": ["pytest>=8,<10", "pytest-xdist>=3.8,<4"]},
    entry_points={"console_scripts": ["streamgov=streamgov_dagster.cli:main"]},
)
