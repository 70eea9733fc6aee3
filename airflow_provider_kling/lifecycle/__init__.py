"""How one fal request runs its course inside Airflow, below the trigger, the operators and the sensor.

* :mod:`.outcome`: trigger events, and the result or exception a finished request turns into;
* :mod:`.output`: the small dict every Kling task returns, built and read back;
* :mod:`.progress`: the progress lines every waiting mode logs;
* :mod:`.reattach`: the request handle a retry finds, so it never pays twice, and whether a retry comes;
* :mod:`.xcom`: the XCom keys and asset extras every Kling task publishes (the extra links read the keys).

No Airflow import at module level: the trigger imports this package in the triggerer.
"""
