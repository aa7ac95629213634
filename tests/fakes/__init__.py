"""Local fakes of the vendor APIs the collectors call, following /work/shared/VENDOR_APIS.md:
aiohttp servers on loopback that the real collector code talks to unchanged."""
