"""The deploy bench's Fabric 2 peer: the steps of `feedops deploy` on every host at once, as a Fabric user
would write them: one thread and one Connection per host that uploads, unpacks, links the shared files,
switches `current` atomically and restarts; then polls /readyz until it reports the new release.

    /usr/bin/python3 fabric-deploy.py job.json

job.json: hosts ([{address, path}], path = the absolute deploy path), user, port, key, known_hosts, tarball,
release, restart (a shell command run in the deploy path with $FEEDOPS_RELEASE set to the release folder), shared_links ([{src, dest}] relative to the
release folder), ready_port, ready_field (the /readyz key holding the release id), timeout (seconds).
Exits 1 naming the hosts that failed.
"""
import json
import shlex
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from fabric import Connection
from paramiko import RejectPolicy

job = json.load(open(sys.argv[1]))
release = job["release"]


def ready(address):
    url = "http://%s:%d/readyz" % (address, job["ready_port"])
    try:
        with urllib.request.urlopen(url, timeout=2) as res:
            return res.status == 200 and json.load(res).get(job["ready_field"]) == release
    except Exception:
        return False


def deploy(host):
    c = Connection(host["address"], user=job["user"], port=job["port"],
                   connect_kwargs={"key_filename": job["key"], "look_for_keys": False, "allow_agent": False})
    c.client.load_host_keys(job["known_hosts"])
    c.client.set_missing_host_key_policy(RejectPolicy())
    try:
        path = host["path"]
        folder = "%s/releases/%s" % (path, release)
        c.put(job["tarball"], remote=folder + ".tar.gz")
        links = " && ".join("ln -sfn %s %s" % (shlex.quote(l["src"]), shlex.quote(folder + "/" + l["dest"]))
                            for l in job["shared_links"]) or "true"
        c.run(" && ".join([
            "cd %s" % shlex.quote(path),
            "mkdir -p %s" % shlex.quote(folder),
            "tar -xzf %s -C %s" % (shlex.quote(folder + ".tar.gz"), shlex.quote(folder)),
            links,
            "ln -sfn %s current.new" % shlex.quote("releases/" + release),
            "mv -T current.new current",
            "export FEEDOPS_RELEASE=%s" % shlex.quote(folder),
            job["restart"],
        ]), hide=True)
    finally:
        c.close()
    deadline = time.monotonic() + job["timeout"]
    while not ready(host["address"]):
        if time.monotonic() > deadline:
            raise RuntimeError("%s: /readyz did not report %s in %ds" % (host["address"], release, job["timeout"]))
        time.sleep(0.1)


with ThreadPoolExecutor(max_workers=len(job["hosts"])) as pool:
    futures = [(h, pool.submit(deploy, h)) for h in job["hosts"]]
failed = [(h["address"], f.exception()) for h, f in futures if f.exception()]
for address, err in failed:
    print("%s: %s" % (address, err), file=sys.stderr)
sys.exit(1 if failed else 0)
