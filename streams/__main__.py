from streams.tools.sessionctl import main

main()
