import ArgumentParser

SSSonectorCommand.main()
