async def test_trigger_then_read_batch(client):
    resp = await client.post("/api/collectors/run", json={"collectors": ["demo"]})
    assert resp.status == 201
    created = await resp.json()
    resp = await client.get(f"/api/collectors/runs/batch/{created['batch_id']}")
    assert resp.status == 200
    body = await resp.json()
    assert body["collectors"][0]["job_id"] == created["collectors"][0]["job_id"]
