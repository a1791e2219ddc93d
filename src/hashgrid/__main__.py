from hashgrid.cli.main import app

app(prog_name="hashgrid")
