from bonesim._entry import run

run()
